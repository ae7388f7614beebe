// Builds an ONNX graph node by node: unique value names, attributes, initializers (weights and
// constants), graph inputs and outputs, then the ModelProto. The exporters of modules and of
// the score rule only ever talk to this class.
import type { Tensor } from "../engine/index.js";
import {
  AttributeType,
  DataType,
  type AttributeProto,
  type DataTypeCode,
  type DimensionProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
  ONNX_IR_VERSION,
  ONNX_OPSET,
} from "./onnx-proto.js";

/** A value in the graph: its name and rank (rank decides e.g. Gemm versus MatMul), and its dims where known (a string names a run-time size). */
export interface Value {
  name: string;
  rank: number;
  dims?: (number | string)[];
}

/** An attribute value: integers and integer lists are ONNX INT/INTS; floats are marked. */
export type Attr = number | number[] | { float: number } | { floats: number[] } | { string: string };

/** A graph input or output: name, element type, and dims (a string names a run-time dimension). */
export interface Port {
  name: string;
  type: DataTypeCode;
  dims: (number | string)[];
  doc?: string;
}

function attribute(name: string, v: Attr): AttributeProto {
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v))
      throw new RangeError(
        `attribute ${name}: integer attributes must be safe integers, got ${v} (mark floats with {float})`,
      );
    return { name, type: AttributeType.INT, i: v };
  }
  if (Array.isArray(v)) {
    for (const x of v)
      if (!Number.isSafeInteger(x))
        throw new RangeError(`attribute ${name}: expected integers, got ${JSON.stringify(v)}`);
    return { name, type: AttributeType.INTS, ints: v };
  }
  if ("float" in v) return { name, type: AttributeType.FLOAT, f: v.float };
  if ("floats" in v) return { name, type: AttributeType.FLOATS, floats: v.floats };
  return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v.string) };
}

/** Little-endian bytes of a typed array (raw_data's layout; every platform Node runs on is little-endian). */
function bytesOf(a: Float32Array | Float64Array | BigInt64Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function valueInfo(p: Port): ValueInfoProto {
  const dim: DimensionProto[] = p.dims.map((d) => (typeof d === "string" ? { dim_param: d } : { dim_value: d }));
  return {
    name: p.name,
    type: { tensor_type: { elem_type: p.type, shape: { dim } } },
    ...(p.doc ? { doc_string: p.doc } : {}),
  };
}

export class GraphBuilder {
  readonly #nodes: NodeProto[] = [];
  readonly #initializers: TensorProto[] = [];
  readonly #names = new Set<string>();
  readonly #inputs: Port[] = [];
  readonly #outputs: Port[] = [];
  #scope = "";
  #count = 0;

  /** A name not used yet: `base`, or `base_2`, `base_3`, ... */
  fresh(base: string): string {
    let name = base;
    for (let i = 2; this.#names.has(name); i++) name = `${base}_${i}`;
    this.#names.add(name);
    return name;
  }

  /** Whether a value, initializer or node already has this name. */
  has(name: string): boolean {
    return this.#names.has(name);
  }

  /** Runs fn with node names prefixed by `scope/` (names say which network and layer a node belongs to). */
  scoped<T>(scope: string, fn: () => T): T {
    const saved = this.#scope;
    this.#scope = saved ? `${saved}/${scope}` : scope;
    try {
      return fn();
    } finally {
      this.#scope = saved;
    }
  }

  /** Adds a node with `outputs` results and returns their names. */
  node(opType: string, inputs: string[], attrs: Record<string, Attr> = {}, outputs = 1): string[] {
    const base = this.#scope ? `${this.#scope}/${opType}` : opType;
    const outs = Array.from({ length: outputs }, (_, i) =>
      this.fresh(`${base}_${this.#count}${outputs > 1 ? `_${i}` : ""}`),
    );
    this.#nodes.push({
      name: this.fresh(`${base}_node_${this.#count}`),
      op_type: opType,
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    this.#count++;
    return outs;
  }

  /** A one-output node. */
  op(opType: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
    return this.node(opType, inputs, attrs, 1)[0] as string;
  }

  /** Adds a named initializer; the name must be new (weights keep their state-dict names). */
  initializer(
    name: string,
    type: DataTypeCode,
    dims: number[],
    data: Float32Array | Float64Array | BigInt64Array | Uint8Array,
  ): string {
    if (this.#names.has(name)) throw new Error(`onnx export: initializer name ${JSON.stringify(name)} is used twice`);
    this.#names.add(name);
    return this.#add(name, type, dims, data);
  }

  #add(
    name: string,
    type: DataTypeCode,
    dims: number[],
    data: Float32Array | Float64Array | BigInt64Array | Uint8Array,
  ): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length)
      throw new RangeError(
        `onnx export: initializer ${name} has dims [${dims.join(", ")}] (${count} elements) but ${data.length} values`,
      );
    this.#initializers.push({ name, dims, data_type: type, raw_data: bytesOf(data) });
    return name;
  }

  /** A float32 engine tensor (a weight or buffer) as an initializer. */
  weight(name: string, t: Tensor, dims: number[] = t.shape): string {
    const data = t.dtype === "float32" ? t.data() : null;
    if (!(data instanceof Float32Array))
      throw new TypeError(`onnx export: ${name} must be a float32 tensor, got ${t.dtype}`);
    return this.initializer(name, DataType.FLOAT, dims, data);
  }

  constFloat(values: number[], dims: number[] = [values.length]): string {
    return this.#add(this.fresh(`const_f32_${this.#count++}`), DataType.FLOAT, dims, Float32Array.from(values));
  }

  constDouble(values: number[], dims: number[] = [values.length]): string {
    return this.#add(this.fresh(`const_f64_${this.#count++}`), DataType.DOUBLE, dims, Float64Array.from(values));
  }

  constInt64(values: number[], dims: number[] = [values.length]): string {
    return this.#add(
      this.fresh(`const_i64_${this.#count++}`),
      DataType.INT64,
      dims,
      BigInt64Array.from(values.map((v) => BigInt(v))),
    );
  }

  input(p: Port): string {
    if (this.#names.has(p.name)) throw new Error(`onnx export: input name ${JSON.stringify(p.name)} is taken`);
    this.#names.add(p.name);
    this.#inputs.push(p);
    return p.name;
  }

  /** Makes `value` a graph output called p.name (through an Identity node, so names stay stable). */
  output(value: string, p: Port): void {
    if (this.#names.has(p.name)) throw new Error(`onnx export: output name ${JSON.stringify(p.name)} is taken`);
    this.#names.add(p.name);
    this.#nodes.push({
      name: this.fresh(`output_${p.name}`),
      op_type: "Identity",
      input: [value],
      output: [p.name],
      attribute: [],
    });
    this.#outputs.push(p);
  }

  build(o: { graphName: string; doc: string; producerVersion: string; metadata: Record<string, string> }): ModelProto {
    return {
      ir_version: ONNX_IR_VERSION,
      opset_import: [{ domain: "", version: ONNX_OPSET }],
      producer_name: "badexpert",
      producer_version: o.producerVersion,
      doc_string: o.doc,
      graph: {
        name: o.graphName,
        node: this.#nodes,
        initializer: this.#initializers,
        input: this.#inputs.map(valueInfo),
        output: this.#outputs.map(valueInfo),
      },
      metadata_props: Object.entries(o.metadata).map(([key, value]) => ({ key, value })),
    };
  }
}

// The ONNX file format: the messages of the official onnx.proto (github.com/onnx/onnx,
// onnx/onnx.proto, same field numbers and names) that an inference graph uses, serialised with
// protobufjs. Only the subset we write is declared: protobuf readers skip what a schema lacks, so
// files we write are complete ONNX models, and files we read back keep the fields we check.
import protobuf from "protobufjs";

/** IR version 8 is the one that goes with opset 17 (ONNX 1.12). */
export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, UINT8: 2, INT32: 6, INT64: 7, BOOL: 9, DOUBLE: 11 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** AttributeProto.AttributeType values used here. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

const SCHEMA = `
syntax = "proto3";
package onnx;

message AttributeProto {
  string name = 1;
  int32 type = 20;
  float f = 2;
  int64 i = 3;
  bytes s = 4;
  TensorProto t = 5;
  repeated float floats = 7;
  repeated int64 ints = 8;
}

message ValueInfoProto {
  string name = 1;
  TypeProto type = 2;
  string doc_string = 3;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  string name = 3;
  string op_type = 4;
  string domain = 7;
  repeated AttributeProto attribute = 5;
  string doc_string = 6;
}

message StringStringEntryProto {
  string key = 1;
  string value = 2;
}

message ModelProto {
  int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  string producer_name = 2;
  string producer_version = 3;
  string domain = 4;
  int64 model_version = 5;
  string doc_string = 6;
  GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
}

message GraphProto {
  repeated NodeProto node = 1;
  string name = 2;
  repeated TensorProto initializer = 5;
  string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message TensorProto {
  repeated int64 dims = 1;
  int32 data_type = 2;
  string name = 8;
  string doc_string = 12;
  bytes raw_data = 9;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    int32 elem_type = 1;
    TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
  string denotation = 6;
}

message OperatorSetIdProto {
  string domain = 1;
  int64 version = 2;
}
`;

// The names mirror onnx.proto (snake_case) so that a reader can hold this file against the spec.
export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  floats?: number[];
  ints?: number[];
}

export interface TensorProto {
  name: string;
  dims: number[];
  data_type: DataTypeCode;
  raw_data: Uint8Array;
  doc_string?: string;
}

export interface NodeProto {
  input: string[];
  output: string[];
  name: string;
  op_type: string;
  domain?: string;
  attribute: AttributeProto[];
  doc_string?: string;
}

/** A dimension is a number, or a name for a dimension chosen at run time (the batch). */
export interface DimensionProto {
  dim_value?: number;
  dim_param?: string;
}

export interface ValueInfoProto {
  name: string;
  type: { tensor_type: { elem_type: DataTypeCode; shape: { dim: DimensionProto[] } } };
  doc_string?: string;
}

export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  doc_string?: string;
}

export interface ModelProto {
  ir_version: number;
  opset_import: { domain: string; version: number }[];
  producer_name: string;
  producer_version: string;
  doc_string?: string;
  graph: GraphProto;
  metadata_props: { key: string; value: string }[];
}

let modelType: protobuf.Type | undefined;

function modelProtoType(): protobuf.Type {
  modelType ??= protobuf.parse(SCHEMA, { keepCase: true }).root.lookupType("onnx.ModelProto");
  return modelType;
}

export function encodeModel(model: ModelProto): Uint8Array {
  const t = modelProtoType();
  return t.encode(t.fromObject(model)).finish();
}

/**
 * ModelProto's producer_name read from the first bytes of an encoded model, or null when they do
 * not hold it (not a ModelProto, or cut before the field). Encoders write fields in number order,
 * so producer_name (2) comes right after ir_version (1).
 */
export function producerName(head: Uint8Array): string | null {
  let at = 0;
  const varint = (): number | null => {
    let v = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (at >= head.length) return null;
      const b = head[at++] as number;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
    return null;
  };
  while (at < head.length) {
    const tag = varint();
    if (tag === null) return null;
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) {
      if (varint() === null) return null;
    } else if (wire === 2) {
      const n = varint();
      if (n === null || at + n > head.length) return null;
      if (field === 2) return new TextDecoder("utf-8", { fatal: false }).decode(head.subarray(at, at + n));
      at += n;
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else return null;
  }
  return null;
}

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new TypeError(`onnx: ${what} must be a message, got ${typeof v}`);
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) out[k] = x;
  return out;
}

function list<T>(o: Obj, key: string, read: (v: unknown, what: string) => T): T[] {
  const v = o[key] ?? [];
  if (!Array.isArray(v)) throw new TypeError(`onnx: ${key} must be repeated`);
  return v.map((x: unknown, i) => read(x, `${key}[${i}]`));
}

function str(o: Obj, key: string): string {
  const v = o[key] ?? "";
  if (typeof v !== "string") throw new TypeError(`onnx: ${key} must be a string, got ${typeof v}`);
  return v;
}

function num(o: Obj, key: string): number {
  const v = o[key] ?? 0;
  if (typeof v !== "number") throw new TypeError(`onnx: ${key} must be a number, got ${typeof v}`);
  return v;
}

function bytes(o: Obj, key: string): Uint8Array {
  const v = o[key] ?? new Uint8Array(0);
  if (!(v instanceof Uint8Array)) throw new TypeError(`onnx: ${key} must be bytes`);
  return v;
}

const asNumber = (v: unknown, what: string): number => {
  if (typeof v !== "number") throw new TypeError(`onnx: ${what} must be a number, got ${typeof v}`);
  return v;
};

function dataType(v: number, what: string): DataTypeCode {
  const known: readonly number[] = Object.values(DataType);
  if (!known.includes(v))
    throw new RangeError(`onnx: ${what} has data type ${v}, not one this schema reads (${known.join(", ")})`);
  return v as DataTypeCode;
}

function tensorOf(v: unknown, what: string): TensorProto {
  const o = obj(v, what);
  return {
    name: str(o, "name"),
    dims: list(o, "dims", asNumber),
    data_type: dataType(num(o, "data_type"), what),
    raw_data: bytes(o, "raw_data"),
  };
}

function attributeOf(v: unknown, what: string): AttributeProto {
  const o = obj(v, what);
  const a: AttributeProto = { name: str(o, "name"), type: num(o, "type") };
  if (o.f !== undefined) a.f = num(o, "f");
  if (o.i !== undefined) a.i = num(o, "i");
  if (o.s !== undefined) a.s = bytes(o, "s");
  if (o.t !== undefined) a.t = tensorOf(o.t, `${what}.t`);
  if (o.floats !== undefined) a.floats = list(o, "floats", asNumber);
  if (o.ints !== undefined) a.ints = list(o, "ints", asNumber);
  return a;
}

function nodeOf(v: unknown, what: string): NodeProto {
  const o = obj(v, what);
  const asString = (x: unknown, w: string): string => {
    if (typeof x !== "string") throw new TypeError(`onnx: ${w} must be a string`);
    return x;
  };
  return {
    name: str(o, "name"),
    op_type: str(o, "op_type"),
    domain: str(o, "domain"),
    input: list(o, "input", asString),
    output: list(o, "output", asString),
    attribute: list(o, "attribute", attributeOf),
  };
}

function valueInfoOf(v: unknown, what: string): ValueInfoProto {
  const o = obj(v, what);
  const tt = obj(obj(o.type, `${what}.type`).tensor_type, `${what}.type.tensor_type`);
  const dim = list(obj(tt.shape ?? {}, `${what}.shape`), "dim", (d, w): DimensionProto => {
    const x = obj(d, w);
    return x.dim_param !== undefined ? { dim_param: str(x, "dim_param") } : { dim_value: num(x, "dim_value") };
  });
  return {
    name: str(o, "name"),
    type: { tensor_type: { elem_type: dataType(num(tt, "elem_type"), what), shape: { dim } } },
  };
}

/**
 * Reads a model file back into the interfaces above (fields outside this schema are skipped),
 * checking each field's type on the way; 64-bit integers become numbers.
 */
export function decodeModel(data: Uint8Array): ModelProto {
  const t = modelProtoType();
  const m = obj(t.toObject(t.decode(data), { longs: Number, arrays: true }), "ModelProto");
  const g = obj(m.graph, "graph");
  const entry = (v: unknown, what: string) => {
    const o = obj(v, what);
    return { key: str(o, "key"), value: str(o, "value") };
  };
  return {
    ir_version: num(m, "ir_version"),
    opset_import: list(m, "opset_import", (v, what) => {
      const o = obj(v, what);
      return { domain: str(o, "domain"), version: num(o, "version") };
    }),
    producer_name: str(m, "producer_name"),
    producer_version: str(m, "producer_version"),
    doc_string: str(m, "doc_string"),
    graph: {
      name: str(g, "name"),
      node: list(g, "node", nodeOf),
      initializer: list(g, "initializer", tensorOf),
      input: list(g, "input", valueInfoOf),
      output: list(g, "output", valueInfoOf),
    },
    metadata_props: list(m, "metadata_props", entry),
  };
}

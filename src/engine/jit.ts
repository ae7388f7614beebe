// TorchScript modules in the engine: a handle to a torch::jit::Module loaded by libtorch, its
// tensors as engine Tensors (sharing storage with the module) and its forward pass. The nn layer
// wraps this as a Module (src/nn/torchscript-module.ts).
import {
  native,
  type JitHandle,
  type RawScriptBlock,
  type RawScriptConstant,
  type RawScriptNode,
  type RawScriptValue,
} from "./native.js";
import { Tensor } from "./tensor.js";
import { checkDevice } from "./runtime.js";

export interface ScriptTensor {
  /** Dotted name, as in the module's state_dict (`blocks.0.norm1.running_mean`). */
  name: string;
  kind: "parameter" | "buffer";
  tensor: Tensor;
}

export type ScriptValue = RawScriptValue;

/** A constant's value; a tensor constant is an engine Tensor, named after the parameter or buffer it is (null if none). */
export type ScriptConstant =
  | null
  | boolean
  | number
  | bigint
  | string
  | ScriptConstant[]
  | { tuple: ScriptConstant[] }
  | { tensor: Tensor; name: string | null }
  | { unsupported: string };

export interface ScriptNode extends Omit<RawScriptNode, "value" | "blocks"> {
  value?: ScriptConstant;
  blocks?: ScriptBlock[];
}

export interface ScriptBlock {
  inputs: ScriptValue[];
  nodes: ScriptNode[];
  outputs: number[];
}

/** The graph of forward() and the tensors its constants hold (the caller disposes them). */
export interface ScriptGraph {
  graph: ScriptBlock;
  tensors: Tensor[];
}

function adoptConstant(c: RawScriptConstant, tensors: Tensor[]): ScriptConstant {
  if (c === null || typeof c !== "object") return c;
  if (Array.isArray(c)) return c.map((x) => adoptConstant(x, tensors));
  if ("tuple" in c) return { tuple: c.tuple.map((x) => adoptConstant(x, tensors)) };
  if ("tensor" in c) {
    const t = new Tensor(c.tensor);
    tensors.push(t);
    return { tensor: t, name: c.name };
  }
  return c;
}

function adoptBlock(b: RawScriptBlock, tensors: Tensor[]): ScriptBlock {
  const node = (n: RawScriptNode): ScriptNode => {
    const { value, blocks, ...rest } = n;
    return {
      ...rest,
      ...(value !== undefined ? { value: adoptConstant(value, tensors) } : {}),
      ...(blocks !== undefined ? { blocks: blocks.map((x) => adoptBlock(x, tensors)) } : {}),
    };
  };
  return { inputs: b.inputs, nodes: b.nodes.map(node), outputs: b.outputs };
}

/** Owns one TorchScript module; dispose() releases it (its tensors' handles are separate). */
export class ScriptModuleHandle {
  #h: JitHandle | null;

  private constructor(h: JitHandle) {
    this.#h = h;
  }

  /**
   * torch::jit::load of a TorchScript file's bytes onto the CPU. libtorch's own errors come back
   * prefixed with "jitLoad". Bytes, not a path: what was checked (and hashed) is what runs.
   */
  static load(bytes: Uint8Array): ScriptModuleHandle {
    return new ScriptModuleHandle(native.jitLoad(bytes));
  }

  get handle(): JitHandle {
    if (this.#h === null) throw new Error("TorchScript module was disposed");
    return this.#h;
  }

  /** New Tensor handles for the module's parameters and buffers; the caller owns the handles. */
  tensors(): ScriptTensor[] {
    return native.jitTensors(this.handle).map((e) => ({ name: e.name, kind: e.kind, tensor: new Tensor(e.handle) }));
  }

  forward(x: Tensor): Tensor {
    return new Tensor(native.jitForward(this.handle, x.handle));
  }

  /**
   * forward() of a frozen copy in evaluation mode: calls inlined, attributes (parameters, buffers,
   * flags) turned into constants, branches on them folded. The module must be in evaluation mode.
   */
  graph(): ScriptGraph {
    const tensors: Tensor[] = [];
    return { graph: adoptBlock(native.jitGraph(this.handle), tensors), tensors };
  }

  train(mode: boolean): void {
    native.jitTrain(this.handle, mode);
  }

  /** A deep copy: same code, new storage for every parameter and buffer. */
  clone(): ScriptModuleHandle {
    return new ScriptModuleHandle(native.jitClone(this.handle));
  }

  save(path: string): void {
    native.jitSave(this.handle, path);
  }

  to(device: string): void {
    checkDevice(device);
    native.jitTo(this.handle, device);
  }

  dispose(): void {
    if (this.#h === null) return;
    native.jitDispose(this.#h);
    this.#h = null;
  }
}

/** The TorchScript file format versions the linked libtorch reads. */
export function scriptFormatVersions(): { min: number; max: number } {
  return native.jitFormatVersions();
}

/** TorchScript modules not disposed yet (for leak checks in tests). */
export function liveScriptModules(): number {
  return native.jitLiveModules();
}

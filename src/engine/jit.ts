// TorchScript modules in the engine: a handle to a torch::jit::Module loaded by libtorch, its
// tensors as engine Tensors (sharing storage with the module) and its forward pass. The nn layer
// wraps this as a Module (src/nn/torchscript-module.ts).
import { native, type JitHandle } from "./native.js";
import { Tensor } from "./tensor.js";
import { checkDevice } from "./runtime.js";

export interface ScriptTensor {
  /** Dotted name, as in the module's state_dict (`blocks.0.norm1.running_mean`). */
  name: string;
  kind: "parameter" | "buffer";
  tensor: Tensor;
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

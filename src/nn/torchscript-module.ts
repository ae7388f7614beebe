// A TorchScript module (a torch.jit.script or torch.jit.trace save) as an nn Module, so a model of
// any architecture trained in PyTorch can be defended like a zoo model. libtorch runs its code;
// its parameters and buffers are registered here under their own dotted names, as tensors that
// share storage with the TorchScript module: stateDict(), loadStateDict() and in-place optimizer
// steps read and change exactly what forward() computes with.
import { libtorchVersion, type Tensor } from "../engine/index.js";
import { ScriptModuleHandle, scriptFormatVersions, type ScriptGraph } from "../engine/jit.js";
import { formatVersion, isTorchScriptArchive } from "../io/torch-zip.js";
import { sha256Hex } from "../io/safetensors.js";
import { isZip, ZipArchive } from "../io/zip.js";
import { readRegularFileSync } from "../util/read-regular-file.js";
import { Module } from "./module.js";
import { BadExpertError, codeOr } from "../util/errors.js";

/** A submodule of a TorchScript module: it only holds state; the whole module runs as one. */
class ScriptSubmodule extends Module {
  constructor(readonly path: string) {
    super();
  }

  override get typeName(): string {
    return "ScriptSubmodule";
  }

  forward(): Tensor {
    throw new Error(
      `TorchScript submodule '${this.path}' cannot run on its own: call forward() on the whole TorchScriptModule`,
    );
  }
}

/** The largest program read: one below Node's largest Buffer (the reader allocates one byte past the limit). */
const MAX_SCRIPT_BYTES = 2 ** 32 - 1;

const NEWER_LIBTORCH = "build the addon against a newer libtorch: BADEXPERT_LIBTORCH=/path/to/libtorch npm run setup";

export interface ScriptLoadOptions {
  /** SHA-256 the file must have (a checkpoint's or bundle's record); checked on the very bytes that are loaded. */
  sha256?: string;
  /** Where that SHA-256 was recorded, for the refusal message. */
  recordedIn?: string;
}

/** Reads the file once and checks it before libtorch sees it, so a wrong, altered or too-new file gets one clear error. */
function readScriptFile(path: string, o: ScriptLoadOptions): Uint8Array {
  let bytes: Uint8Array;
  try {
    // Type and size checked first: a FIFO or a device in a bundle would otherwise block or never end.
    bytes = readRegularFileSync(path, { maxBytes: MAX_SCRIPT_BYTES, what: "TorchScript file" });
  } catch (e) {
    throw new BadExpertError(codeOr(e, "E_IO"), `torchscript: cannot read ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (o.sha256 !== undefined && sha256Hex(bytes) !== o.sha256) {
    throw new BadExpertError(
      "E_MODEL_FORMAT",
      `torchscript: ${path} does not match the SHA-256 recorded in ${o.recordedIn ?? "its manifest"}: the program was changed or replaced after it was written`,
    );
  }
  if (!isZip(bytes))
    throw new BadExpertError(
      "E_MODEL_FORMAT",
      `torchscript: ${path} is not a TorchScript file (not a zip archive; torch.jit.save writes one)`,
    );
  const zip = new ZipArchive(bytes, path);
  if (!isTorchScriptArchive(zip)) {
    throw new BadExpertError(
      "E_MODEL_FORMAT",
      `torchscript: ${path} holds no TorchScript code (a torch.save file? import a state_dict with --weights FILE --arch NAME)`,
    );
  }
  const v = formatVersion(zip);
  const { max } = scriptFormatVersions();
  if (v !== undefined && v > max) {
    throw new BadExpertError(
      "E_MODEL_FORMAT",
      `torchscript: ${path} has file format version ${v}, newer than the linked libtorch ${libtorchVersion()} reads (up to version ${max}); ` +
        `re-export it with an older PyTorch, or ${NEWER_LIBTORCH}`,
    );
  }
  return bytes;
}

export class TorchScriptModule extends Module {
  readonly #script: ScriptModuleHandle;

  private constructor(script: ScriptModuleHandle) {
    super();
    this.#script = script;
    this.#adopt();
  }

  /** Loads a TorchScript file (on the CPU, in evaluation mode). */
  static load(path: string, o: ScriptLoadOptions = {}): TorchScriptModule {
    const bytes = readScriptFile(path, o);
    let script: ScriptModuleHandle;
    try {
      script = ScriptModuleHandle.load(bytes);
    } catch (e) {
      const msg = (e as Error).message.split("\n")[0] ?? "";
      const tooNew = /version|unknown builtin op|schema|upgrader/i.test(msg);
      throw new BadExpertError(
        "E_MODEL_FORMAT",
        `torchscript: libtorch ${libtorchVersion()} cannot load ${path}: ${msg}${tooNew ? `; the file may need a newer libtorch: ${NEWER_LIBTORCH}` : ""}`,
      );
    }
    return new TorchScriptModule(script).eval();
  }

  override get typeName(): string {
    return "TorchScriptModule";
  }

  /** Registers the script's tensors under their dotted names, making submodules on the way. */
  #adopt(): void {
    const submodules = new Map<string, Module<unknown[], unknown>>();
    const ownerOf = (path: string): Module<unknown[], unknown> | null => {
      if (path === "") return null; // this module itself
      let m = submodules.get(path);
      if (!m) {
        const dot = path.lastIndexOf(".");
        const parent = ownerOf(path.slice(0, Math.max(dot, 0)));
        const child = new ScriptSubmodule(path);
        m = parent ? parent.registerModule(path.slice(dot + 1), child) : this.registerModule(path, child);
        submodules.set(path, m);
      }
      return m;
    };
    for (const { name, kind, tensor } of this.#script.tensors()) {
      const dot = name.lastIndexOf(".");
      const owner = ownerOf(dot < 0 ? "" : name.slice(0, dot));
      const leaf = name.slice(dot + 1);
      if (owner === null) {
        if (kind === "parameter") this.registerParameter(leaf, tensor);
        else this.registerBuffer(leaf, tensor);
      } else if (kind === "parameter") owner.registerParameter(leaf, tensor);
      else owner.registerBuffer(leaf, tensor);
    }
  }

  forward(x: Tensor): Tensor {
    return this.#script.forward(x);
  }

  /** The program of forward() as a graph of operators, for exporters (src/export/torchscript-graph.ts); evaluation mode only. */
  scriptGraph(): ScriptGraph {
    if (this.training)
      throw new Error("TorchScriptModule.scriptGraph: the module is in training mode; call eval() first");
    return this.#script.graph();
  }

  /** Training mode here and in the script. A traced module keeps the mode it was traced in (tracing fixes BN and dropout). */
  override train(mode = true): this {
    super.train(mode);
    this.#script.train(mode);
    return this;
  }

  /** An independent copy (same code, copied weights, same mode). */
  clone(): TorchScriptModule {
    const copy = new TorchScriptModule(this.#script.clone());
    return copy.train(this.training);
  }

  /** Writes a TorchScript file with the current weights (torch.jit.load reads it back). */
  save(path: string): void {
    this.#script.save(path);
  }

  override to(device: string): this {
    // Re-registering every tensor after the script moves is not done yet: CPU only, said clearly.
    if (device === "cpu") return this;
    throw new Error(
      `TorchScriptModule.to: device "${device}" is not supported for TorchScript models yet (they run on the CPU)`,
    );
  }

  override dispose(): void {
    super.dispose();
    this.#script.dispose();
  }
}

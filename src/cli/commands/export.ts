// `badexpert export`: the detector of a bundle as one ONNX graph (images → pred, b, a, score,
// flagged), or as a Triton model repository around that graph. Zoo and TorchScript-imported
// bundles alike (docs/export.md).
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { choice, emitJson, int, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { loadBundle } from "../../defense/bundle.js";
import { detectorGraph, modelGraph } from "../../export/detector-graph.js";
import { encodeModel, producerName, type ModelProto } from "../../export/onnx-proto.js";
import { assertTritonWritable, writeTritonRepository } from "../../export/triton.js";
import { supportedTorchScriptOps } from "../../export/torchscript-export.js";
import { BadExpertError } from "../../util/errors.js";

const FORMATS = ["onnx", "triton"] as const;
/** How much of an existing file is read to find its producer (the field comes in the first bytes). */
const PRODUCER_HEAD_BYTES = 4096;

/**
 * Throws unless `out` may be written: absent, or (with `force`) an ONNX model badexpert exported.
 * Anything else (someone's file, a directory, a link) is refused and left as it is.
 */
function checkOnnxOut(out: string, force: boolean): void {
  let st;
  try {
    st = lstatSync(out);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new BadExpertError(
      "E_IO",
      `--out ${out}: cannot inspect (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      { cause: e },
    );
  }
  if (!st.isFile())
    throw new BadExpertError("E_IO", `--out ${out} exists and is not a regular file; refusing to replace it`);
  if (!force)
    throw new BadExpertError(
      "E_IO",
      `--out ${out} already exists; refusing to overwrite it (--force replaces an ONNX model badexpert exported)`,
    );
  const fd = openSync(out, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  let producer: string | null;
  try {
    if (!fstatSync(fd).isFile())
      throw new BadExpertError("E_IO", `--out ${out} is not a regular file; refusing to replace it`);
    const head = Buffer.alloc(PRODUCER_HEAD_BYTES);
    producer = producerName(head.subarray(0, readSync(fd, head, 0, head.length, 0)));
  } finally {
    closeSync(fd);
  }
  if (producer !== "badexpert") {
    throw new BadExpertError(
      "E_IO",
      `--out ${out} is not an ONNX model badexpert exported (${producer === null ? "not an ONNX model" : `producer ${JSON.stringify(producer.slice(0, 40))}`}); refusing to replace it (choose another file, or move it yourself)`,
    );
  }
}

/** Words joined into lines of at most `width` characters, each indented by `indent`. */
function wrap(words: string[], width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const w of words) {
    if (line && indent.length + line.length + 1 + w.length > width) {
      lines.push(indent + line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(indent + line);
  return lines;
}

export const exportCommand: Command = {
  name: "export",
  summary: "export a detector bundle to ONNX (one graph) or a Triton model repository",
  details: [
    "The graph takes `images` (float32 [N, C, H, W] in [0, 1], any N), normalises them, runs M, B and M',",
    "and returns pred (int64), expert_confidence and auxiliary_confidence (float32), score (float64) and",
    "flagged (bool: NOT(score <= threshold), so a NaN score is flagged). ONNX opset 17; the threshold is the",
    "initializer `threshold`. --model-only writes M alone (outputs logits and pred).",
    "",
    "A model imported with `badexpert import --torchscript` (any architecture) is exported by translating its",
    "TorchScript program (forward() frozen in evaluation mode) operator by operator (docs/export.md). Supported:",
    ...wrap(supportedTorchScriptOps(), 104, "  "),
    "Sizes derived from the image's channels, height and width fold into constants; the batch stays dynamic.",
    "Anything else (another operator, control flow on the input's values) is refused with one error naming",
    "the operator and where it occurs in the model; nothing is written.",
  ].join("\n"),
  examples: [
    "badexpert export --bundle out/demo/detector --format onnx --out out/detector.onnx",
    "badexpert export --bundle out/demo/detector --format triton --out out/model_repository --name badexpert",
    "badexpert export --bundle out/demo/detector --model-only --out out/model.onnx",
  ],
  options: {
    bundle: { type: "string", short: "b", description: "detector bundle directory (from `badexpert defend`)" },
    format: {
      type: "string",
      description: "onnx (one file) or triton (a model repository directory)",
      default: "onnx",
    },
    out: { type: "string", short: "o", description: "output file (onnx) or repository directory (triton)" },
    "model-only": { type: "boolean", description: "export the suspicious model M alone (logits and pred)" },
    name: { type: "string", description: "triton: the model's name in the repository", default: "badexpert" },
    force: {
      type: "boolean",
      description:
        "replace an existing --out (an ONNX file, or the model's directory in the Triton repository) that badexpert exported",
    },
    "max-batch-size": {
      type: "string",
      description: "triton: largest batch (max_batch_size)",
      default: "256",
      value: { kind: "int", min: 1, max: 1e9 },
    },
    ...RUNTIME_OPTIONS,
  },
  async run(v) {
    applyRuntimeOptions(v);
    const bundle = str(v, "bundle");
    if (!bundle) throw new UsageError("--bundle is required (a directory written by `badexpert defend`)");
    const out = str(v, "out");
    if (!out) throw new UsageError("--out is required (a .onnx file, or a directory for --format triton)");
    const format = choice(v, "format", FORMATS) ?? "onnx";
    const force = v.force === true;
    const name = str(v, "name") ?? "badexpert";
    // Refused before the bundle is loaded and the graph built.
    if (format === "triton") await assertTritonWritable(out, { name, replace: force, forceHint: "--force" });
    else checkOnnxOut(out, force);
    const t0 = Date.now();
    const det = await loadBundle(bundle);
    let model: ModelProto;
    try {
      const { preprocessing, classNames, spec } = det.info;
      model = v["model-only"]
        ? modelGraph(det.model, { preprocessing, classNames, architecture: spec.name })
        : detectorGraph(det);
    } finally {
      det.dispose();
    }
    const summary = {
      format,
      kind: v["model-only"] ? "model" : "detector",
      nodes: model.graph.node.length,
      initializers: model.graph.initializer.length,
      inputs: model.graph.input.map((p) => p.name),
      outputs: model.graph.output.map((p) => p.name),
    };
    let written: Record<string, string>;
    if (format === "triton") {
      written = await writeTritonRepository(out, model, {
        name,
        maxBatchSize: int(v, "max-batch-size", exportCommand.options) ?? 256,
        replace: force,
        forceHint: "--force",
      });
    } else {
      const tmp = `${out}.tmp-${process.pid}`;
      try {
        // "wx": a file already under the temporary name is someone else's, never written over.
        await writeFile(tmp, encodeModel(model), { flag: "wx" });
        checkOnnxOut(out, force);
        await rename(tmp, out);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") await rm(tmp, { force: true });
        throw e;
      }
      written = { model: out };
    }
    const seconds = (Date.now() - t0) / 1000;
    console.error(
      `[export] ${summary.kind} (${summary.nodes} nodes, ${summary.initializers} initializers) → ${Object.values(written).join(", ")} in ${seconds.toFixed(1)} s`,
    );
    emitJson(v, { ...summary, written, seconds });
    return 0;
  },
};

// A detector bundle: one directory with the three models' weights (safetensors, PyTorch key
// names) and `detector.json` (architecture, preprocessing, class names, score rule, threshold,
// target FPR, calibration statistics, creation details). Loading it back gives a detector that
// produces identical scores.
import { mkdir, readFile, writeFile, rename, access } from "node:fs/promises";
import { join } from "node:path";
import { dispose } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import { isKnownArchitecture, modelForSpec, saveModelSource } from "../models/model-source.js";
import { loadTensors, saveTensors } from "../io/weights.js";
import { BadExpertDetector, type DetectorInfo } from "./detector.js";
import { assertScoreRule } from "./scores.js";

export const BUNDLE_FORMAT = "badexpert-detector";
export const BUNDLE_VERSION = 1;
const FILES = { model: "model.safetensors", expert: "expert.safetensors", auxiliary: "auxiliary.safetensors", manifest: "detector.json" } as const;

interface Manifest extends DetectorInfo {
  format: typeof BUNDLE_FORMAT;
  version: number;
  files: typeof FILES;
}

export async function saveBundle(dir: string, d: BadExpertDetector): Promise<void> {
  await mkdir(dir, { recursive: true });
  const meta = { format: BUNDLE_FORMAT, architecture: d.info.spec.name };
  await saveTensors(join(dir, FILES.model), d.model.stateDict(), { ...meta, role: "suspicious model M" });
  saveModelSource(dir, d.model, d.info.spec);
  await saveTensors(join(dir, FILES.expert), d.expert.stateDict(), { ...meta, role: "backdoor expert B" });
  await saveTensors(join(dir, FILES.auxiliary), d.auxiliary.stateDict(), { ...meta, role: "auxiliary model M'" });
  const manifest: Manifest = { format: BUNDLE_FORMAT, version: BUNDLE_VERSION, files: FILES, ...d.info };
  const tmp = join(dir, `${FILES.manifest}.tmp-${process.pid}`);
  // The threshold may be ±Infinity in degenerate cases; JSON has no Infinity, so write it as a string.
  await writeFile(tmp, `${JSON.stringify(manifest, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v), 2)}\n`);
  await rename(tmp, join(dir, FILES.manifest));
}

function parseNumber(v: unknown, what: string): number {
  const n = typeof v === "string" ? Number(v) : v;
  if (typeof n !== "number" || Number.isNaN(n)) throw new Error(`${what} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

export async function loadBundle(dir: string): Promise<BadExpertDetector> {
  const path = join(dir, FILES.manifest);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === "ENOENT" ? `bundle: ${path} not found (is ${dir} a detector bundle made by \`badexpert defend\`?)` : `bundle: ${path}: ${(e as Error).message}`);
  }
  const m = raw as Partial<Manifest>;
  if (m.format !== BUNDLE_FORMAT) throw new Error(`bundle: ${path}: "format" must be "${BUNDLE_FORMAT}", got ${JSON.stringify(m.format)}`);
  if (m.version !== BUNDLE_VERSION) throw new Error(`bundle: ${path}: version ${String(m.version)} is not supported (expected ${BUNDLE_VERSION})`);
  if (!m.spec || !isKnownArchitecture(m.spec.name)) throw new Error(`bundle: ${path}: unknown architecture ${JSON.stringify(m.spec?.name)}`);
  if (!m.preprocessing || !m.classNames || !m.calibration) throw new Error(`bundle: ${path}: manifest lacks preprocessing, classNames or calibration`);
  const info: DetectorInfo = {
    spec: m.spec,
    preprocessing: m.preprocessing,
    classNames: m.classNames,
    rule: assertScoreRule(String(m.rule), `bundle: ${path}: rule`),
    threshold: parseNumber(m.threshold, `bundle: ${path}: threshold`),
    targetFpr: parseNumber(m.targetFpr, `bundle: ${path}: targetFpr`),
    calibration: { ...m.calibration, threshold: parseNumber(m.calibration.threshold, `bundle: ${path}: calibration.threshold`) },
    creation: m.creation ?? {},
  };
  const made: Module[] = [];
  try {
    const load = async (file: string, role: string): Promise<Module> => {
      const p = join(dir, file);
      try {
        await access(p);
      } catch {
        throw new Error(`bundle: ${p} (${role}) not found`);
      }
      const model = modelForSpec(info.spec, dir);
      made.push(model);
      const { tensors } = await loadTensors(p);
      try {
        model.loadStateDict(tensors, { strict: true });
      } catch (e) {
        throw new Error(`bundle: ${p} (${role}) does not fit the manifest's ${info.spec.name}: ${(e as Error).message}`);
      } finally {
        dispose(tensors);
      }
      return model;
    };
    const model = await load(FILES.model, "M");
    const expert = await load(FILES.expert, "B");
    const auxiliary = await load(FILES.auxiliary, "M'");
    return new BadExpertDetector({ model, expert, auxiliary }, info);
  } catch (e) {
    for (const x of made) x.dispose();
    throw e;
  }
}

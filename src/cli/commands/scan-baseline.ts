// `scan --bundle DIR` on a baseline detector bundle (`defend --detector NAME`): the same streaming
// scan as BaDExpert's (scan.ts), with the baseline's score, its calibrated threshold and the shared
// fail-closed rule (detectors/scoring.ts: a non-finite score is flagged, and scan reports it as an
// error line, never a clean verdict). Stochastic baselines get per-input seeds (input-seeds.ts),
// as in the service, so scan and serve give an image the same score.
import type { LoadedDetector } from "../../detectors/bundle.js";
import { failClosed, flagged } from "../../detectors/scoring.js";
import { inputSeeds } from "../../detectors/input-seeds.js";
import { readImageFile } from "../../data/read-image-file.js";
import { decodeImageFrames } from "../../data/image-decode.js";
import { decodeReporting, type DecodeOutcome } from "../../api/detector.js";
import type { ScanModel, ScanRecord } from "./scan-model.js";

export function baselineScanModel(loaded: LoadedDetector): ScanModel {
  const det = loaded.detector;
  const { preprocessing: p, classNames } = loaded.context;
  const [height, width] = p.imageSize;
  const channels = p.channels === 1 ? 1 : 3;
  return {
    imageSize: [height, width],
    channels,
    async decodeEach(files, firstIndex, o) {
      const out: DecodeOutcome[] = [];
      for (const [k, file] of files.entries()) {
        out.push(await decodeReporting(async (onConversion) => (await decodeImageFrames(await readImageFile(file), file ?? `images[${firstIndex + k}]`, { size: { height, width }, channels, ...o, onConversion })).map((f) => f.pixels)));
      }
      return out;
    },
    checkInput(h, w, c, what) {
      if (h !== height || w !== width || c !== channels) throw new RangeError(`${what}: images are ${h}x${w}x${c}, the detector's model reads ${height}x${width}x${channels}`);
    },
    score(x) {
      // Seeds from each image's pixels: a stochastic baseline scores an image as the service does, whatever its batch.
      const r = det.scoreBatch(x, { seeds: inputSeeds(x, loaded.inputSeedKey) });
      failClosed(r.score);
      const f = flagged(r.score, loaded.threshold);
      return Promise.resolve(Array.from(r.pred, (pred, i): ScanRecord => ({ pred, predClass: classNames[pred] ?? String(pred), score: r.score[i] as number, flagged: f[i] === 1 })));
    },
  };
}

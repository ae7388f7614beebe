// Usage: node dist/detect.js BUNDLE_DIR IMAGE...
// Scores each image with the detector and prints one JSON line per image; exits 1 when any image
// is flagged as a suspected backdoor input.
import { Detector } from "badexpert";

const [bundle, ...images] = process.argv.slice(2);
if (!bundle || images.length === 0) {
  console.error("usage: node dist/detect.js BUNDLE_DIR IMAGE...");
  process.exit(2);
}

const detector = await Detector.load(bundle);
try {
  const { architecture, rule, threshold } = detector.summary;
  console.error(`detector: ${architecture}, rule ${rule}, threshold ${threshold}`);
  const results = await detector.score(images);
  for (const [i, r] of results.entries()) console.log(JSON.stringify({ image: images[i], ...r }));
  process.exitCode = results.some((r) => r.flagged) ? 1 : 0;
} finally {
  await detector.dispose();
}

// Child process for the interrupted-write tests: saves the same bundle over `dir` again and again
// until it is killed. Prints "saving" once the first write has started.
import { saveBundle } from "../../src/defense/bundle.js";
import { quickDetector } from "./quick-detector.js";

const dir = process.argv[2];
if (dir === undefined) throw new Error("usage: save-loop.js DIR");
const det = quickDetector(0);
let first = true;
for (;;) {
  const p = saveBundle(dir, det, { replace: true });
  if (first) {
    process.stdout.write("saving\n");
    first = false;
  }
  await p;
}

// `npm run bench:memory [-- --steps N] [-- --json]`: a memory soak. 2,000 training steps of a small
// CNN (Fashion-MNIST-sized random batches); resident memory must stay flat after warm-up
// (target: growth < 50 MB) and the live-tensor count must not grow at all.
import { randn, randint, tidy, manualSeed, memory, F } from "../src/engine/index.js";
import { Conv2d, Linear, Module, BatchNorm2d } from "../src/nn/index.js";
import { Adam } from "../src/optim/index.js";
import { printTable, round, wantsJson } from "./harness.js";

class SmallCnn extends Module {
  readonly c1 = this.registerModule("c1", new Conv2d(1, 16, 3, { padding: 1 }));
  readonly b1 = this.registerModule("b1", new BatchNorm2d(16));
  readonly c2 = this.registerModule("c2", new Conv2d(16, 32, 3, { padding: 1 }));
  readonly fc = this.registerModule("fc", new Linear(32 * 7 * 7, 10));
  forward(x: ReturnType<typeof randn>) {
    return tidy(() => {
      const h = F.maxPool2d(this.b1.forward(this.c1.forward(x)).relu(), 2);
      const g = F.maxPool2d(this.c2.forward(h).relu(), 2);
      return this.fc.forward(g.flatten(1));
    });
  }
}

const stepsArg = process.argv.indexOf("--steps");
const steps = stepsArg > 0 ? Number(process.argv[stepsArg + 1]) : 2000;
const warmup = Math.min(200, Math.floor(steps / 10));
manualSeed(0);
const model = new SmallCnn();
const opt = new Adam(model.parameters(), { lr: 1e-3 });
const rssMb = () => process.memoryUsage().rss / 2 ** 20;
let rssAfterWarmup = 0;
let tensorsAfterWarmup = 0;
let peak = 0;
const t0 = Date.now();
for (let i = 0; i < steps; i++) {
  tidy(() => {
    const x = randn([64, 1, 28, 28]);
    const y = randint(0, 10, [64]);
    opt.zeroGrad();
    F.crossEntropy(model.forward(x), y).backward();
    opt.step();
  });
  if (i === warmup - 1) {
    global.gc?.();
    rssAfterWarmup = rssMb();
    tensorsAfterWarmup = memory().numTensors;
  }
  if (i >= warmup) peak = Math.max(peak, rssMb());
  if ((i + 1) % 500 === 0)
    console.error(`step ${i + 1}/${steps}: rss ${round(rssMb())} MB, live tensors ${memory().numTensors}`);
}
global.gc?.();
const result = {
  steps,
  seconds: round((Date.now() - t0) / 1000),
  rssAfterWarmupMb: round(rssAfterWarmup),
  rssEndMb: round(rssMb()),
  rssGrowthMb: round(rssMb() - rssAfterWarmup),
  rssPeakMb: round(peak),
  liveTensorGrowth: memory().numTensors - tensorsAfterWarmup,
};
printTable("memory soak: small CNN, batch 64, Adam", [
  ["steps", String(result.steps)],
  ["time", `${result.seconds} s`],
  ["RSS after warm-up", `${result.rssAfterWarmupMb} MB`],
  ["RSS at end", `${result.rssEndMb} MB`],
  ["RSS growth", `${result.rssGrowthMb} MB (target < 50 MB)`],
  ["live tensor growth", String(result.liveTensorGrowth)],
]);
opt.dispose();
model.dispose();
if (wantsJson()) console.log(JSON.stringify(result));
process.exitCode = result.rssGrowthMb < 50 && result.liveTensorGrowth === 0 ? 0 : 1;

// `npm run bench:engine [-- --json] [--only resnet20]`: matmul throughput, CIFAR-style ResNet-18
// training (batch 64, SGD Nesterov step) and inference (batch 256) speed, and ResNet-20 training
// (batch 128; `--only resnet20` measures that alone). Compare with
// `python3 bench/reference/engine_pytorch.py` (same libtorch driven from Python).
import { randn, randint, tidy, inferenceMode, manualSeed, getNumThreads, memory, F } from "../src/engine/index.js";
import { ResNet18, ResNet20 } from "../src/models/resnet.js";
import type { Module } from "../src/nn/index.js";
import { SGD } from "../src/optim/index.js";
import { medianSeconds, printTable, round, seconds, wantsJson } from "./harness.js";

function matmulGflops(n = 2048, reps = 10): number {
  const a = randn([n, n]);
  const b = randn([n, n]);
  const t = medianSeconds(() => tidy(() => void a.matmul(b)), reps, 1);
  a.dispose();
  b.dispose();
  return (2 * n ** 3) / t / 1e9;
}

function resnetTrain(
  make: () => Module = () => new ResNet18({ numClasses: 10 }),
  batch = 64,
  warmup = 2,
  steps = 8,
): number {
  const model = make();
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  const x = randn([batch, 3, 32, 32]);
  const y = randint(0, 10, [batch]);
  model.train();
  const step = () =>
    tidy(() => {
      opt.zeroGrad();
      F.crossEntropy(model.forward(x), y).backward();
      opt.step();
    });
  for (let i = 0; i < warmup; i++) step();
  const t = seconds(() => {
    for (let i = 0; i < steps; i++) step();
  });
  opt.dispose();
  model.dispose();
  x.dispose();
  y.dispose();
  return (batch * steps) / t;
}

function resnetInfer(batch = 256, warmup = 1, steps = 4): number {
  const model = new ResNet18({ numClasses: 10 });
  model.eval();
  const x = randn([batch, 3, 32, 32]);
  const run = () => inferenceMode(() => tidy(() => void model.forward(x)));
  for (let i = 0; i < warmup; i++) run();
  const t = seconds(() => {
    for (let i = 0; i < steps; i++) run();
  });
  model.dispose();
  x.dispose();
  return (batch * steps) / t;
}

manualSeed(0);
const before = memory().numTensors;
const resnet20 = () => round(resnetTrain(() => new ResNet20({ numClasses: 10 }), 128, 2, 8));
if (process.argv.includes("--only") && process.argv.includes("resnet20")) {
  const r = { resnet20TrainImgPerSec: resnet20(), threads: getNumThreads() };
  printTable("ResNet-20 training speed", [
    ["ResNet-20 train, batch 128", `${r.resnet20TrainImgPerSec} img/s`],
    ["threads", String(r.threads)],
  ]);
  if (wantsJson()) console.log(JSON.stringify(r));
  process.exit(0);
}
const result = {
  matmulGflops: round(matmulGflops()),
  resnet18TrainImgPerSec: round(resnetTrain()),
  resnet18InferImgPerSec: round(resnetInfer()),
  resnet20TrainImgPerSec: resnet20(),
  threads: getNumThreads(),
};
const leaked = memory().numTensors - before;
printTable("badexpert engine benchmark (libtorch via N-API)", [
  ["matmul 2048x2048 float32", `${result.matmulGflops} GFLOP/s`],
  ["ResNet-18 train, batch 64", `${result.resnet18TrainImgPerSec} img/s`],
  ["ResNet-18 inference, batch 256", `${result.resnet18InferImgPerSec} img/s`],
  ["ResNet-20 train, batch 128", `${result.resnet20TrainImgPerSec} img/s`],
  ["threads", String(result.threads)],
  ["tensors leaked", String(leaked)],
]);
if (wantsJson()) console.log(JSON.stringify(result));

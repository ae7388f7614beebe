// `npm run bench:engine [-- --json]`: matmul throughput and CIFAR-style ResNet-18 training
// (batch 64, SGD Nesterov step) and inference (batch 256) speed. Compare with
// `python3 bench/reference/engine_pytorch.py` (same libtorch driven from Python).
import { randn, randint, tidy, inferenceMode, manualSeed, getNumThreads, memory, F } from "../src/engine/index.js";
import { ResNet18 } from "../src/models/resnet.js";
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

function resnetTrain(batch = 64, warmup = 2, steps = 8): number {
  const model = new ResNet18({ numClasses: 10 });
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
const result = {
  matmulGflops: round(matmulGflops()),
  resnet18TrainImgPerSec: round(resnetTrain()),
  resnet18InferImgPerSec: round(resnetInfer()),
  threads: getNumThreads(),
};
const leaked = memory().numTensors - before;
printTable("badexpert engine benchmark (libtorch via N-API)", [
  ["matmul 2048x2048 float32", `${result.matmulGflops} GFLOP/s`],
  ["ResNet-18 train, batch 64", `${result.resnet18TrainImgPerSec} img/s`],
  ["ResNet-18 inference, batch 256", `${result.resnet18InferImgPerSec} img/s`],
  ["threads", String(result.threads)],
  ["tensors leaked", String(leaked)],
]);
if (wantsJson()) console.log(JSON.stringify(result));

// The only module that loads the native addon. Everything else talks to libtorch through
// the typed `native` object exported here.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

declare const handleBrand: unique symbol;
/** An opaque reference to a libtorch tensor owned by the addon. */
export interface Handle {
  readonly [handleBrand]: true;
}
type H = Handle;
declare const jitBrand: unique symbol;
/** An opaque reference to a TorchScript module (torch::jit::Module) owned by the addon. */
export interface JitHandle {
  readonly [jitBrand]: true;
}
type Opt<T> = T | null | undefined;

/** A value of a TorchScript graph as jitGraph reports it (rank and dtype where the type records them). */
export interface RawScriptValue {
  id: number;
  name: string;
  /** "Tensor", or TorchScript's annotation of any other type ("int", "int[]", "Optional[Tensor]", ...). */
  type: string;
  rank?: number;
  dtype?: string;
}
/** A prim::Constant's value; big integers (INT64_MAX as "to the end") as bigint. */
export type RawScriptConstant =
  | null
  | boolean
  | number
  | bigint
  | string
  | RawScriptConstant[]
  | { tuple: RawScriptConstant[] }
  | { tensor: Handle; name: string | null }
  | { unsupported: string };
export interface RawScriptNode {
  kind: string;
  inputs: number[];
  outputs: RawScriptValue[];
  value?: RawScriptConstant;
  blocks?: RawScriptBlock[];
  /** Submodule path of the calls the node was inlined from ("blocks.0.attn"); "" at the top. */
  scope: string;
  /** "file:line" of the source it was compiled from, when known. */
  source?: string;
  code?: string;
}
export interface RawScriptBlock {
  inputs: RawScriptValue[];
  nodes: RawScriptNode[];
  outputs: number[];
}
type Num = number | boolean;
type HN = H | Num;

export interface NativeAddon {
  dispose(h: H): void;
  liveHandles(): number;
  setNumThreads(n: number): void;
  /** glibc mallopt(M_MMAP_THRESHOLD); false where it does not apply. */
  setMmapThreshold(bytes: number): boolean;
  /** openblas_set_num_threads (process-wide); false where the BLAS is not OpenBLAS or OPENBLAS_NUM_THREADS is set. */
  setBlasThreads(n: number): boolean;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  version(): { libtorch: string; parallel: string };

  fromBytes(view: ArrayBufferView, dtype: string, shape: number[], device?: string): H;
  toBytes(h: H): ArrayBuffer;
  item(h: H): number | boolean;
  shape(h: H): number[];
  dtype(h: H): string;
  device(h: H): string;
  zeros(shape: number[], dtype?: string, device?: string): H;
  ones(shape: number[], dtype?: string, device?: string): H;
  empty(shape: number[], dtype?: string, device?: string): H;
  full(shape: number[], value: Num, dtype?: string, device?: string): H;
  arange(start: number, end: number, step: number, dtype?: string, device?: string): H;
  linspace(start: number, end: number, steps: number, dtype?: string, device?: string): H;
  eye(n: number, dtype?: string, device?: string): H;
  rand(shape: number[], dtype?: string, device?: string): H;
  randn(shape: number[], dtype?: string, device?: string): H;
  randint(low: number, high: number, shape: number[], dtype?: string, device?: string): H;
  randperm(n: number, dtype?: string, device?: string): H;
  bernoulli(p: H): H;
  multinomial(p: H, n: number, replacement: boolean): H;
  uniform_(h: H, low: number, high: number): void;
  normal_(h: H, mean: number, std: number): void;
  to(h: H, device: Opt<string>, dtype: Opt<string>): H;
  clone(h: H): H;
  detach(h: H): H;
  contiguous(h: H): H;
  alias(h: H): H;

  add(a: H, b: HN): H;
  sub(a: H, b: HN): H;
  rsub(a: H, b: HN): H;
  mul(a: H, b: HN): H;
  div(a: H, b: HN): H;
  pow(a: H, b: HN): H;
  remainder(a: H, b: HN): H;
  floorDivide(a: H, b: HN): H;
  eq(a: H, b: HN): H;
  ne(a: H, b: HN): H;
  lt(a: H, b: HN): H;
  le(a: H, b: HN): H;
  gt(a: H, b: HN): H;
  ge(a: H, b: HN): H;
  maximum(a: H, b: H): H;
  minimum(a: H, b: H): H;
  logicalAnd(a: H, b: H): H;
  logicalOr(a: H, b: H): H;
  matmul(a: H, b: H): H;
  clamp(a: H, min: Opt<number>, max: Opt<number>): H;
  neg(a: H): H;
  exp(a: H): H;
  log(a: H): H;
  log1p(a: H): H;
  sqrt(a: H): H;
  rsqrt(a: H): H;
  abs(a: H): H;
  sign(a: H): H;
  sin(a: H): H;
  cos(a: H): H;
  floor(a: H): H;
  ceil(a: H): H;
  round(a: H): H;
  reciprocal(a: H): H;
  square(a: H): H;
  logicalNot(a: H): H;
  isnan(a: H): H;
  isfinite(a: H): H;
  relu(a: H): H;
  relu6(a: H): H;
  sigmoid(a: H): H;
  tanh(a: H): H;
  silu(a: H): H;
  erf(a: H): H;
  erfinv(a: H): H;
  gelu(a: H, approximate: string): H;
  leakyRelu(a: H, slope: number): H;

  sum(a: H, dims: Opt<number[]>, keepdim: boolean): H;
  mean(a: H, dims: Opt<number[]>, keepdim: boolean): H;
  amax(a: H, dims: number[], keepdim: boolean): H;
  amin(a: H, dims: number[], keepdim: boolean): H;
  var(a: H, dims: Opt<number[]>, unbiased: boolean, keepdim: boolean): H;
  std(a: H, dims: Opt<number[]>, unbiased: boolean, keepdim: boolean): H;
  logsumexp(a: H, dims: number[], keepdim: boolean): H;
  prod(a: H): H;
  cumsum(a: H, dim: number): H;
  all(a: H): H;
  any(a: H): H;
  norm(a: H, p: number, dims: Opt<number[]>, keepdim: boolean): H;
  argmax(a: H, dim: Opt<number>, keepdim: boolean): H;
  argmin(a: H, dim: Opt<number>, keepdim: boolean): H;
  maxDim(a: H, dim: number, keepdim: boolean): [H, H];
  minDim(a: H, dim: number, keepdim: boolean): [H, H];
  topk(a: H, k: number, dim: number, largest: boolean, sorted: boolean): [H, H];
  sort(a: H, dim: number, descending: boolean): [H, H];

  reshape(a: H, shape: number[]): H;
  permute(a: H, dims: number[]): H;
  transpose(a: H, d0: number, d1: number): H;
  flatten(a: H, start: number, end: number): H;
  squeeze(a: H, dim: Opt<number>): H;
  unsqueeze(a: H, dim: number): H;
  expand(a: H, shape: number[]): H;
  repeat(a: H, reps: number[]): H;
  flip(a: H, dims: number[]): H;
  roll(a: H, shifts: number[], dims: number[]): H;
  tril(a: H, k: number): H;
  triu(a: H, k: number): H;
  cat(hs: H[], dim: number): H;
  stack(hs: H[], dim: number): H;
  split(a: H, size: number, dim: number): H[];
  slice(a: H, dim: number, start: number, end: number, step: number): H;
  select(a: H, dim: number, index: number): H;
  indexSelect(a: H, dim: number, index: H): H;
  indexCopy(a: H, dim: number, index: H, source: H): H;
  gather(a: H, dim: number, index: H): H;
  scatter(a: H, dim: number, index: H, src: HN): H;
  scatterAdd(a: H, dim: number, index: H, src: H): H;
  where(cond: H, a: HN, b: HN): H;
  maskedFill(a: H, mask: H, value: Num): H;
  maskedSelect(a: H, mask: H): H;
  nonzero(a: H): H;
  oneHot(a: H, numClasses: number): H;
  pad(a: H, pads: number[], mode: string, value: number): H;

  add_(a: H, b: HN, alpha?: number): void;
  mul_(a: H, b: HN): void;
  div_(a: H, b: HN): void;
  copy_(a: H, src: H): void;
  zero_(a: H): void;
  fill_(a: H, v: Num): void;
  addcmul_(a: H, t1: H, t2: H, value: number): void;
  addcdiv_(a: H, t1: H, t2: H, value: number): void;
  lerp_(a: H, end: H, weight: number): void;
  clamp_(a: H, min: Opt<number>, max: Opt<number>): void;
  maximum_(a: H, b: H): void;

  linear(x: H, w: H, b: Opt<H>): H;
  conv2d(x: H, w: H, b: Opt<H>, stride: number[], padding: number[], dilation: number[], groups: number): H;
  convTranspose2d(
    x: H,
    w: H,
    b: Opt<H>,
    stride: number[],
    padding: number[],
    outputPadding: number[],
    groups: number,
    dilation: number[],
  ): H;
  batchNorm(x: H, w: Opt<H>, b: Opt<H>, rm: Opt<H>, rv: Opt<H>, training: boolean, momentum: number, eps: number): H;
  layerNorm(x: H, normalizedShape: number[], w: Opt<H>, b: Opt<H>, eps: number): H;
  softmax(x: H, dim: number): H;
  logSoftmax(x: H, dim: number): H;
  crossEntropy(logits: H, target: H, reduction: string, labelSmoothing: number): H;
  nllLoss(logp: H, target: H, reduction: string): H;
  mseLoss(a: H, b: H, reduction: string): H;
  bceWithLogits(a: H, b: H, reduction: string): H;
  dropout(x: H, p: number, train: boolean): H;
  maxPool2d(x: H, kernel: number[], stride: number[], padding: number[], dilation: number[], ceil: boolean): H;
  avgPool2d(x: H, kernel: number[], stride: number[], padding: number[], ceil: boolean, countIncludePad: boolean): H;
  adaptiveAvgPool2d(x: H, size: number[]): H;
  interpolate(x: H, size: number[], mode: string, alignCorners: boolean): H;
  gridSample(x: H, grid: H, mode: string, paddingMode: string, alignCorners: boolean): H;
  affineGrid(theta: H, size: number[], alignCorners: boolean): H;

  setRequiresGrad(h: H, v: boolean): void;
  requiresGrad(h: H): boolean;
  isLeaf(h: H): boolean;
  retainGrad(h: H): void;
  backward(h: H, grad: Opt<H>, retainGraph: boolean): void;
  grad(h: H): H | null;
  setGrad(h: H, g: Opt<H>): void;
  gradients(outputs: H[], inputs: H[], gradOutputs: Opt<H[]>, retainGraph: boolean, createGraph: boolean): (H | null)[];
  setGradEnabled(v: boolean): boolean;
  isGradEnabled(): boolean;
  enterInferenceMode(): void;
  exitInferenceMode(): void;
  isInferenceTensor(h: H): boolean;

  /** torch::jit::load from the bytes of a TorchScript file (copied). */
  jitLoad(bytes: Uint8Array): JitHandle;
  jitDispose(m: JitHandle): void;
  jitLiveModules(): number;
  /** Parameters then buffers, recursive, dotted names; the handles share storage with the module. */
  jitTensors(m: JitHandle): { name: string; kind: "parameter" | "buffer"; handle: H }[];
  jitForward(m: JitHandle, x: H): H;
  jitTrain(m: JitHandle, mode: boolean): void;
  jitClone(m: JitHandle): JitHandle;
  jitSave(m: JitHandle, path: string): void;
  jitTo(m: JitHandle, device: string): void;
  /** The TorchScript file format versions the linked libtorch reads. */
  jitFormatVersions(): { min: number; max: number };
  /** forward() of a frozen copy (evaluation mode): inlined, attributes as constants. Tensor constants are new handles. */
  jitGraph(m: JitHandle): RawScriptBlock;
}

function addonPath(): string {
  // Works from src/ (ts sources) and from dist/src/ (compiled): walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "native", "build", "Release", "badexpert.node");
    if (existsSync(candidate)) return candidate;
    dir = resolve(dir, "..");
  }
  throw new Error(
    "badexpert: the native addon is not built (native/build/Release/badexpert.node not found). " +
      "Run `npm run setup` (installs libtorch and builds the addon).",
  );
}

function load(): NativeAddon {
  const require = createRequire(import.meta.url);
  const addon = require(addonPath()) as NativeAddon;
  const require_ = createRequire(import.meta.url);
  const os = require_("node:os") as typeof import("node:os");
  // libtorch starts with one thread here; use every core unless told otherwise.
  addon.setNumThreads(threadsFromEnv(process.env.BADEXPERT_THREADS, os.availableParallelism()));
  return addon;
}

/**
 * BADEXPERT_THREADS, strictly: unset means every core; otherwise a decimal integer in
 * 1..4 × cores (more threads than that only slow libtorch down: 2,000 threads made a 1.6 s scan
 * take 45 s). Checked before the addon is used, so a typo never reaches libtorch.
 */
export function threadsFromEnv(env: string | undefined, cores: number): number {
  if (env === undefined) return cores;
  const max = 4 * cores;
  const n = /^\d+$/.test(env) ? Number(env) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new RangeError(
      `BADEXPERT_THREADS: expected a decimal integer in 1..${max} (4 × ${cores} cores) or unset, got ${JSON.stringify(env)}`,
    );
  }
  return n;
}

export const native: NativeAddon = load();

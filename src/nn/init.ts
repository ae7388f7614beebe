// PyTorch's weight initialisers (torch.nn.init): in-place, under noGrad, returning the tensor.
// The formulas are PyTorch's so that layers start from the same distributions (and, drawing in
// the same order from libtorch's generator, the same values for the same seed).
import { Tensor, formatShape, noGrad, scalar, tidy } from "../engine/index.js";

export type Nonlinearity =
  | "linear"
  | "identity"
  | "conv1d"
  | "conv2d"
  | "conv3d"
  | "conv_transpose1d"
  | "conv_transpose2d"
  | "conv_transpose3d"
  | "sigmoid"
  | "tanh"
  | "relu"
  | "leaky_relu"
  | "selu";

export type FanMode = "fan_in" | "fan_out";

/** The recommended gain for a nonlinearity; `param` is leaky_relu's negative slope (default 0.01). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case "linear":
    case "identity":
    case "conv1d":
    case "conv2d":
    case "conv3d":
    case "conv_transpose1d":
    case "conv_transpose2d":
    case "conv_transpose3d":
    case "sigmoid":
      return 1;
    case "tanh":
      return 5 / 3;
    case "relu":
      return Math.SQRT2;
    case "leaky_relu": {
      const slope = param ?? 0.01;
      if (!Number.isFinite(slope))
        throw new RangeError(`calculateGain: negative slope must be a finite number, got ${slope}`);
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case "selu":
      // Not derived from a variance argument: PyTorch's value, chosen for self-normalising nets.
      return 3 / 4;
    default:
      throw new RangeError(`calculateGain: unknown nonlinearity ${JSON.stringify(nonlinearity)}`);
  }
}

/**
 * Fan-in and fan-out of a weight [out, in, ...kernel]: in (resp. out) times the number of
 * kernel elements.
 */
export function calculateFanInAndFanOut(t: Tensor): { fanIn: number; fanOut: number } {
  const s = t.shape;
  if (s.length < 2) {
    throw new RangeError(
      `calculateFanInAndFanOut: needs a tensor with at least 2 dimensions, got shape ${formatShape(s)}`,
    );
  }
  const receptive = s.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: (s[1] ?? 0) * receptive, fanOut: (s[0] ?? 0) * receptive };
}

function fan(t: Tensor, mode: FanMode): number {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  if (mode === "fan_in") return fanIn;
  if (mode === "fan_out") return fanOut;
  throw new RangeError(`kaiming init: mode must be 'fan_in' or 'fan_out', got ${JSON.stringify(mode)}`);
}

export function uniform_(t: Tensor, low = 0, high = 1): Tensor {
  if (!(low <= high)) throw new RangeError(`uniform_: low (${low}) must not exceed high (${high})`);
  return noGrad(() => t.uniform_(low, high));
}

export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  if (!(std >= 0)) throw new RangeError(`normal_: std must be non-negative, got ${std}`);
  return noGrad(() => t.normal_(mean, std));
}

export function constant_(t: Tensor, value: number): Tensor {
  return noGrad(() => t.fill_(value));
}

export function zeros_(t: Tensor): Tensor {
  return noGrad(() => t.zero_());
}

export function ones_(t: Tensor): Tensor {
  return noGrad(() => t.fill_(1));
}

export interface KaimingOptions {
  /** Negative slope of the rectifier after this layer (leaky_relu only). Default 0. */
  a?: number;
  /** "fan_in" keeps forward activations' variance, "fan_out" backward gradients'. Default "fan_in". */
  mode?: FanMode;
  /** Default "leaky_relu" (with a = 0 it is ReLU's gain, sqrt(2)). */
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, o: KaimingOptions): number {
  const f = fan(t, o.mode ?? "fan_in");
  return calculateGain(o.nonlinearity ?? "leaky_relu", o.a ?? 0) / Math.sqrt(f);
}

/** He initialisation: U(-bound, bound) with bound = gain * sqrt(3 / fan). */
export function kaimingUniform_(t: Tensor, o: KaimingOptions = {}): Tensor {
  if (t.size === 0) return t;
  const bound = Math.sqrt(3) * kaimingStd(t, o);
  return uniform_(t, -bound, bound);
}

/** He initialisation: N(0, std^2) with std = gain / sqrt(fan). */
export function kaimingNormal_(t: Tensor, o: KaimingOptions = {}): Tensor {
  if (t.size === 0) return t;
  return normal_(t, 0, kaimingStd(t, o));
}

function xavierStd(t: Tensor, gain: number): number {
  const { fanIn, fanOut } = calculateFanInAndFanOut(t);
  return gain * Math.sqrt(2 / (fanIn + fanOut));
}

/** Glorot initialisation: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform_(t: Tensor, o: { gain?: number } = {}): Tensor {
  const a = Math.sqrt(3) * xavierStd(t, o.gain ?? 1);
  return uniform_(t, -a, a);
}

/** Glorot initialisation: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)). */
export function xavierNormal_(t: Tensor, o: { gain?: number } = {}): Tensor {
  return normal_(t, 0, xavierStd(t, o.gain ?? 1));
}

export interface TruncNormalOptions {
  mean?: number;
  std?: number;
  /** Lower cut-off, in absolute units (not standard deviations). Default -2. */
  a?: number;
  /** Upper cut-off, in absolute units. Default 2. */
  b?: number;
}

/**
 * N(mean, std^2) restricted to [a, b], drawn by inverting the normal CDF on uniform draws
 * (PyTorch's method), so the cost does not depend on how much mass lies outside [a, b].
 */
export function truncNormal_(t: Tensor, o: TruncNormalOptions = {}): Tensor {
  const mean = o.mean ?? 0;
  const std = o.std ?? 1;
  const a = o.a ?? -2;
  const b = o.b ?? 2;
  if (!(std > 0)) throw new RangeError(`truncNormal_: std must be positive, got ${std}`);
  if (!(a < b)) throw new RangeError(`truncNormal_: a (${a}) must be less than b (${b})`);
  if (t.size === 0) return t;
  noGrad(() =>
    tidy(() => {
      // 2*cdf(z) - 1 = erf(z / sqrt 2): uniform draws in that range map back to z through erfinv.
      const lo = 2 * normalCdf((a - mean) / std) - 1;
      const hi = 2 * normalCdf((b - mean) / std) - 1;
      t.uniform_(lo, hi);
      const limit = 1 - 1e-15;
      const u = t.to({ dtype: "float64" }).clamp(-limit, limit);
      const x = u
        .erfinv()
        .mul(std * Math.SQRT2)
        .add(mean)
        .clamp(a, b);
      t.copy_(x);
    }),
  );
  return t;
}

function normalCdf(x: number): number {
  if (x === Infinity) return 1;
  if (x === -Infinity) return 0;
  return tidy(
    () =>
      (1 +
        scalar(x / Math.SQRT2, { dtype: "float64" })
          .erf()
          .item()) /
      2,
  );
}

// Batch normalisation (torch.nn.BatchNorm1d/2d): normalise each channel with batch statistics
// while training (updating running estimates) and with the running estimates in evaluation.
import { F, type Tensor, formatShape, noGrad, ones, scalar, zeros } from "../engine/index.js";
import { ones_, zeros_ } from "./init.js";
import { Module } from "./module.js";
import { positiveInt, positiveNumber } from "./options.js";
import { pyBool, pyFloat } from "./repr.js";

export interface BatchNormOptions {
  /** Added to the variance for stability. Default 1e-5. */
  eps?: number;
  /**
   * Weight of the new batch in the running estimates (running = (1-m)*running + m*batch).
   * null gives a cumulative (equal-weight) average. Default 0.1.
   */
  momentum?: number | null;
  /** Learn a per-channel scale (weight) and shift (bias). Default true. */
  affine?: boolean;
  /** Keep running_mean/running_var for evaluation; without them batch statistics are always used. Default true. */
  trackRunningStats?: boolean;
}

abstract class BatchNormBase extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;

  constructor(numFeatures: number, opts: BatchNormOptions) {
    super();
    const layer = new.target.name;
    this.numFeatures = positiveInt(layer, "numFeatures", numFeatures);
    this.eps = positiveNumber(layer, "eps", opts.eps ?? 1e-5);
    const momentum = opts.momentum === undefined ? 0.1 : opts.momentum;
    if (momentum !== null && !(momentum >= 0 && momentum <= 1)) {
      throw new RangeError(`${layer}: momentum must be in [0, 1] or null, got ${String(momentum)}`);
    }
    this.momentum = momentum;
    this.affine = opts.affine ?? true;
    this.trackRunningStats = opts.trackRunningStats ?? true;

    this.registerParameter("weight", this.affine ? ones([numFeatures]) : null);
    this.registerParameter("bias", this.affine ? zeros([numFeatures]) : null);
    const track = this.trackRunningStats;
    this.registerBuffer("running_mean", track ? zeros([numFeatures]) : null);
    this.registerBuffer("running_var", track ? ones([numFeatures]) : null);
    this.registerBuffer("num_batches_tracked", track ? scalar(0, { dtype: "int64" }) : null);
    this.resetParameters();
  }

  /** [numFeatures] scale, or null without affine. */
  get weight(): Tensor | null {
    return this.getParameter("weight");
  }
  get bias(): Tensor | null {
    return this.getParameter("bias");
  }
  get runningMean(): Tensor | null {
    return this.getBuffer("running_mean");
  }
  get runningVar(): Tensor | null {
    return this.getBuffer("running_var");
  }
  /** int64 scalar: training batches seen. */
  get numBatchesTracked(): Tensor | null {
    return this.getBuffer("num_batches_tracked");
  }

  resetRunningStats(): void {
    noGrad(() => {
      this.runningMean?.zero_();
      this.runningVar?.fill_(1);
      this.numBatchesTracked?.zero_();
    });
  }

  resetParameters(): void {
    this.resetRunningStats();
    const w = this.weight;
    const b = this.bias;
    if (w !== null) ones_(w);
    if (b !== null) zeros_(b);
  }

  protected abstract checkInput(x: Tensor): void;

  forward(x: Tensor): Tensor {
    this.checkInput(x);
    let factor = this.momentum ?? 0;
    const counter = this.numBatchesTracked;
    if (this.training && counter !== null) {
      incrementCounter(counter);
      if (this.momentum === null) factor = 1 / counter.item();
    }
    const useRunning = !this.training || this.trackRunningStats;
    return F.batchNorm(x, {
      weight: this.weight,
      bias: this.bias,
      runningMean: useRunning ? this.runningMean : null,
      runningVar: useRunning ? this.runningVar : null,
      training: this.training || (this.runningMean === null && this.runningVar === null),
      momentum: factor,
      eps: this.eps,
    });
  }

  protected override optionalStateKeys(): readonly string[] {
    return this.trackRunningStats ? ["num_batches_tracked"] : [];
  }

  override extraRepr(): string {
    return (
      `${this.numFeatures}, eps=${pyFloat(this.eps)}, momentum=${pyFloat(this.momentum)}, ` +
      `affine=${pyBool(this.affine)}, track_running_stats=${pyBool(this.trackRunningStats)}`
    );
  }
}

/** Adds one to the int64 counter in place (outside autograd). */
function incrementCounter(t: Tensor): void {
  noGrad(() => t.add_(1));
}

/** Over channels of [N, C, H, W] images. */
export class BatchNorm2d extends BatchNormBase {
  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super(numFeatures, opts);
  }

  protected checkInput(x: Tensor): void {
    if (x.rank !== 4)
      throw new RangeError(`BatchNorm2d: expected a 4-D input [N, C, H, W], got shape ${formatShape(x.shape)}`);
  }
}

/** Over features of [N, C] or [N, C, L] inputs. */
export class BatchNorm1d extends BatchNormBase {
  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super(numFeatures, opts);
  }

  protected checkInput(x: Tensor): void {
    if (x.rank !== 2 && x.rank !== 3) {
      throw new RangeError(
        `BatchNorm1d: expected a 2-D or 3-D input [N, C] or [N, C, L], got shape ${formatShape(x.shape)}`,
      );
    }
  }
}

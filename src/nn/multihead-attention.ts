// Multi-head scaled dot-product attention (torch.nn.MultiheadAttention), with PyTorch's
// parameter layout (one packed in_proj for q, k, v; an out_proj Linear) so checkpoints load.
import { F, type Tensor, formatShape, tidy, zeros } from "../engine/index.js";
import { xavierUniform_, zeros_ } from "./init.js";
import { Linear } from "./linear.js";
import { Module } from "./module.js";
import { positiveInt, probability } from "./options.js";

export interface MultiheadAttentionOptions {
  /** Dropout on the attention weights while training. Default 0. */
  dropout?: number;
  /** Biases on the input and output projections. Default true. */
  bias?: boolean;
  /** Inputs and output are [N, L, E] (true) or [L, N, E] (false, PyTorch's default). Default false. */
  batchFirst?: boolean;
}

export interface AttentionOptions {
  /** Also return the attention weights. Default false (PyTorch defaults to true). */
  needWeights?: boolean;
  /**
   * [L, S] or [N*numHeads, L, S]. A bool mask marks pairs that may not attend (true = blocked);
   * a float mask is added to the scores.
   */
  attnMask?: Tensor | null;
  /** [N, S] ([S] unbatched): keys to ignore; bool (true = ignore) or float (added). */
  keyPaddingMask?: Tensor | null;
  /** Average the returned weights over heads ([N, L, S]) rather than keep them ([N, H, L, S]). Default true. */
  averageAttnWeights?: boolean;
}

export interface AttentionOutput {
  /** Same layout as the query: [L, N, E], [N, L, E] with batchFirst, or [L, E] unbatched. */
  output: Tensor;
  /** Present when needWeights: [N, L, S] (or [N, H, L, S]); the batch dimension is absent unbatched. */
  weights?: Tensor;
}

type AttentionArgs = [query: Tensor, key: Tensor, value: Tensor, opts?: AttentionOptions];

export class MultiheadAttention extends Module<AttentionArgs, AttentionOutput> {
  readonly embedDim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;

  constructor(embedDim: number, numHeads: number, opts: MultiheadAttentionOptions = {}) {
    super();
    this.embedDim = positiveInt("MultiheadAttention", "embedDim", embedDim);
    this.numHeads = positiveInt("MultiheadAttention", "numHeads", numHeads);
    if (embedDim % numHeads !== 0) {
      throw new RangeError(`MultiheadAttention: embedDim (${embedDim}) must be divisible by numHeads (${numHeads})`);
    }
    this.headDim = embedDim / numHeads;
    this.dropout = probability("MultiheadAttention", "dropout", opts.dropout ?? 0);
    this.batchFirst = opts.batchFirst ?? false;
    const bias = opts.bias ?? true;

    // Registration order fixes the state-dict order: in_proj_weight, in_proj_bias, out_proj.*.
    this.registerParameter("in_proj_weight", zeros([3 * embedDim, embedDim]));
    this.registerParameter("in_proj_bias", bias ? zeros([3 * embedDim]) : null);
    // Linear draws its own initial values first, then in_proj: PyTorch's order of random draws.
    this.registerModule("out_proj", new Linear(embedDim, embedDim, { bias }));
    this.resetParameters();
  }

  /** [3E, E]: rows 0..E-1 project queries, then keys, then values. */
  get inProjWeight(): Tensor {
    return this.requireParameter("in_proj_weight");
  }

  /** [3E], or null without bias. */
  get inProjBias(): Tensor | null {
    return this.getParameter("in_proj_bias");
  }

  get outProj(): Linear {
    const m = this.getModule("out_proj");
    if (!(m instanceof Linear)) throw new TypeError("MultiheadAttention: out_proj is not a Linear");
    return m;
  }

  /** PyTorch's: xavier_uniform on in_proj_weight, zero biases; out_proj.weight keeps Linear's init. */
  resetParameters(): void {
    xavierUniform_(this.inProjWeight);
    const inBias = this.inProjBias;
    if (inBias !== null) zeros_(inBias);
    const outBias = this.outProj.bias;
    if (outBias !== null) zeros_(outBias);
  }

  forward(query: Tensor, key: Tensor, value: Tensor, opts: AttentionOptions = {}): AttentionOutput {
    const batched = this.#checkInputs(query, key, value);
    const E = this.embedDim;
    const H = this.numHeads;
    const d = this.headDim;
    return tidy(() => {
      const toBatchFirst = (t: Tensor): Tensor => (!batched ? t.unsqueeze(0) : this.batchFirst ? t : t.transpose(0, 1));
      const q = toBatchFirst(query);
      const k = toBatchFirst(key);
      const v = toBatchFirst(value);
      const N = q.dim(0);
      const L = q.dim(1);
      const S = k.dim(1);

      const [wq, wk, wv] = this.inProjWeight.split(E, 0);
      const [bq, bk, bv] = this.inProjBias?.split(E, 0) ?? [];
      if (wq === undefined || wk === undefined || wv === undefined)
        throw new Error("MultiheadAttention: in_proj_weight split failed");
      // [N, len, E] -> [N, H, len, d]: each head attends over its own slice of the embedding.
      const heads = (t: Tensor, len: number): Tensor => t.reshape([N, len, H, d]).permute([0, 2, 1, 3]);
      const qh = heads(F.linear(q, wq, bq), L);
      const kh = heads(F.linear(k, wk, bk), S);
      const vh = heads(F.linear(v, wv, bv), S);

      let scores = qh.matmul(kh.transpose(-2, -1)).mul(1 / Math.sqrt(d));
      const attnMask = opts.attnMask ?? null;
      if (attnMask !== null) {
        this.#checkAttnMask(attnMask, N, L, S);
        scores = addMask(scores, attnMask.rank === 3 ? attnMask.reshape([N, H, L, S]) : attnMask);
      }
      const padMask = opts.keyPaddingMask ?? null;
      if (padMask !== null) {
        const want = batched ? [N, S] : [S];
        if (padMask.rank !== want.length || padMask.shape.some((x, i) => x !== want[i])) {
          throw new RangeError(
            `MultiheadAttention: keyPaddingMask must have shape ${formatShape(want)}, got ${formatShape(padMask.shape)}`,
          );
        }
        scores = addMask(scores, padMask.reshape([N, 1, 1, S]));
      }

      let attn = scores.softmax(-1);
      if (this.training && this.dropout > 0) attn = F.dropout(attn, this.dropout, true);
      const context = attn.matmul(vh).permute([0, 2, 1, 3]).reshape([N, L, E]);
      const projected = this.outProj.forward(context);
      const output = !batched ? projected.squeeze(0) : this.batchFirst ? projected : projected.transpose(0, 1);
      if (!(opts.needWeights ?? false)) return { output };
      const perHead = (opts.averageAttnWeights ?? true) ? attn.mean(1) : attn;
      return { output, weights: batched ? perHead : perHead.squeeze(0) };
    });
  }

  /** Returns whether the inputs carry a batch dimension. */
  #checkInputs(query: Tensor, key: Tensor, value: Tensor): boolean {
    const qs = query.shape;
    const ks = key.shape;
    const vs = value.shape;
    const layout = this.batchFirst ? "[N, L, E]" : "[L, N, E]";
    if (qs.length !== 2 && qs.length !== 3) {
      throw new RangeError(
        `MultiheadAttention: query must be ${layout} or unbatched [L, E], got shape ${formatShape(qs)}`,
      );
    }
    for (const [name, s] of [
      ["query", qs],
      ["key", ks],
      ["value", vs],
    ] as const) {
      if (s.length !== qs.length) {
        throw new RangeError(
          `MultiheadAttention: ${name} must have rank ${qs.length} like the query, got shape ${formatShape(s)}`,
        );
      }
      if (s[s.length - 1] !== this.embedDim) {
        throw new RangeError(
          `MultiheadAttention: ${name}'s last dimension must be embedDim (${this.embedDim}), got shape ${formatShape(s)}`,
        );
      }
    }
    const seqDim = qs.length === 3 && this.batchFirst ? 1 : 0;
    if (ks[seqDim] !== vs[seqDim]) {
      throw new RangeError(
        `MultiheadAttention: key and value must have the same sequence length, got shapes ${formatShape(ks)} and ${formatShape(vs)}`,
      );
    }
    if (qs.length === 3) {
      const batchDim = this.batchFirst ? 0 : 1;
      if (ks[batchDim] !== qs[batchDim] || vs[batchDim] !== qs[batchDim]) {
        throw new RangeError(
          `MultiheadAttention: query, key and value must have the same batch size (dim ${batchDim}), ` +
            `got shapes ${formatShape(qs)}, ${formatShape(ks)}, ${formatShape(vs)}`,
        );
      }
    }
    return qs.length === 3;
  }

  #checkAttnMask(mask: Tensor, n: number, l: number, s: number): void {
    const ok2 = [l, s];
    const ok3 = [n * this.numHeads, l, s];
    const shape = mask.shape;
    const matches = (want: number[]): boolean => shape.length === want.length && shape.every((x, i) => x === want[i]);
    if (!matches(ok2) && !matches(ok3)) {
      throw new RangeError(
        `MultiheadAttention: attnMask must have shape ${formatShape(ok2)} or ${formatShape(ok3)}, got ${formatShape(shape)}`,
      );
    }
  }
}

/** Bool masks block (score -> -inf, weight 0); float masks are added to the scores. */
function addMask(scores: Tensor, mask: Tensor): Tensor {
  return mask.dtype === "bool" ? scores.maskedFill(mask, -Infinity) : scores.add(mask);
}

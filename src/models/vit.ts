// A small Vision Transformer for 32x32 images (Dosovitskiy et al. 2021, "An Image is Worth 16x16
// Words"): non-overlapping patches embedded by a strided convolution, a class token, learned
// position embeddings, pre-norm transformer blocks, and a linear head on the class token.
//
// State-dict keys follow timm's VisionTransformer (global_pool="token", qkv_bias=True, no
// layer scale, no register tokens):
//   cls_token [1, 1, D], pos_embed [1, 1 + P, D], patch_embed.proj.{weight, bias},
//   blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}.{weight, bias},
//   norm.{weight, bias}, head.{weight, bias}.
// The qkv output is laid out [3][heads][headDim] as in timm, LayerNorm eps is 1e-6, GELU is the
// exact (erf) form, and initialisation follows timm's "vit" scheme: truncated normal
// (std 0.02, cut at +-2) for pos_embed, cls_token and every Linear weight, zero Linear biases.
//
// Defaults (dim 192, depth 6, 3 heads, MLP ratio 4, patch 4: 65 tokens at 32x32, 2.7M
// parameters) are ViT-Tiny's width at half its depth: about a third of CIFAR ResNet-18's
// multiply-adds, so a few epochs fit on a 2-core CPU. Transformers trained from scratch on 50k
// images stay well below ResNets in accuracy; this model is for architecture coverage.
import { cat, formatShape, tidy, type Tensor, zeros } from "../engine/index.js";
import { Conv2d, GELU, LayerNorm, Linear, Module, ModuleList, init } from "../nn/index.js";
import { imageSizePair, type ImageSizeOption } from "./options.js";
import { positiveInt } from "../nn/options.js";

const LN_EPS = 1e-6;

/** timm's default for Linear layers in a ViT: trunc_normal(std=.02) weights, zero biases. */
function initLinear(layer: Linear): Linear {
  init.truncNormal_(layer.weight, { std: 0.02 });
  const b = layer.bias;
  if (b !== null) init.zeros_(b);
  return layer;
}

/** Splits images into patches and projects each to `dim` (a conv with kernel = stride = patch). */
export class PatchEmbed extends Module {
  readonly patchSize: number;
  readonly proj: Conv2d;

  constructor(inChannels: number, dim: number, patchSize: number) {
    super();
    this.patchSize = patchSize;
    this.proj = this.registerModule("proj", new Conv2d(inChannels, dim, patchSize, { stride: patchSize }));
  }

  /** [N, C, H, W] -> [N, (H/p)(W/p), dim], patches in row-major order. */
  forward(x: Tensor): Tensor {
    return tidy(() => this.proj.forward(x).flatten(2).transpose(1, 2));
  }
}

/** Multi-head self-attention with timm's packed qkv projection. */
export class Attention extends Module {
  readonly numHeads: number;
  readonly headDim: number;
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(dim: number, numHeads: number) {
    super();
    this.numHeads = numHeads;
    this.headDim = dim / numHeads;
    this.qkv = this.registerModule("qkv", initLinear(new Linear(dim, 3 * dim)));
    this.proj = this.registerModule("proj", initLinear(new Linear(dim, dim)));
  }

  /** [N, T, D] -> [N, T, D] */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [n, t, d] = [x.dim(0), x.dim(1), x.dim(2)];
      // [N, T, 3D] -> [3, N, heads, T, headDim]: the packed order timm's checkpoints use.
      const qkv = this.qkv.forward(x).reshape([n, t, 3, this.numHeads, this.headDim]).permute([2, 0, 3, 1, 4]);
      const q = qkv.select(0, 0);
      const k = qkv.select(0, 1);
      const v = qkv.select(0, 2);
      const attn = q
        .matmul(k.transpose(-2, -1))
        .mul(1 / Math.sqrt(this.headDim))
        .softmax(-1);
      const context = attn.matmul(v).transpose(1, 2).reshape([n, t, d]);
      return this.proj.forward(context);
    });
  }
}

export class Mlp extends Module {
  readonly fc1: Linear;
  readonly act: GELU;
  readonly fc2: Linear;

  constructor(dim: number, hidden: number) {
    super();
    this.fc1 = this.registerModule("fc1", initLinear(new Linear(dim, hidden)));
    this.act = this.registerModule("act", new GELU());
    this.fc2 = this.registerModule("fc2", initLinear(new Linear(hidden, dim)));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(this.act.forward(this.fc1.forward(x))));
  }
}

/** Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)). */
export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;

  constructor(dim: number, numHeads: number, mlpHidden: number) {
    super();
    this.norm1 = this.registerModule("norm1", new LayerNorm(dim, { eps: LN_EPS }));
    this.attn = this.registerModule("attn", new Attention(dim, numHeads));
    this.norm2 = this.registerModule("norm2", new LayerNorm(dim, { eps: LN_EPS }));
    this.mlp = this.registerModule("mlp", new Mlp(dim, mlpHidden));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = x.add(this.attn.forward(this.norm1.forward(x)));
      return h.add(this.mlp.forward(this.norm2.forward(h)));
    });
  }
}

export interface VitOptions {
  /** Default 10. */
  numClasses?: number;
  /** Default 3. */
  inChannels?: number;
  /** Side length or [height, width]; each must be a multiple of patchSize. Default 32. */
  imageSize?: ImageSizeOption;
  /** Default 4. */
  patchSize?: number;
  /** Embedding width; a multiple of numHeads. Default 192. */
  dim?: number;
  /** Number of transformer blocks. Default 6. */
  depth?: number;
  /** Default 3. */
  numHeads?: number;
  /** MLP hidden width as a multiple of dim. Default 4. */
  mlpRatio?: number;
}

export class VisionTransformer extends Module {
  readonly imageSize: [number, number];
  readonly patchSize: number;
  readonly dim: number;
  readonly inChannels: number;
  readonly numPatches: number;
  readonly patchEmbed: PatchEmbed;
  readonly blocks: ModuleList<Block>;
  readonly norm: LayerNorm;
  readonly head: Linear;

  constructor(opts: VitOptions = {}) {
    super();
    const name = "VisionTransformer";
    const numClasses = positiveInt(name, "numClasses", opts.numClasses ?? 10);
    this.inChannels = positiveInt(name, "inChannels", opts.inChannels ?? 3);
    this.imageSize = imageSizePair(name, opts.imageSize ?? 32);
    this.patchSize = positiveInt(name, "patchSize", opts.patchSize ?? 4);
    this.dim = positiveInt(name, "dim", opts.dim ?? 192);
    const depth = positiveInt(name, "depth", opts.depth ?? 6);
    const numHeads = positiveInt(name, "numHeads", opts.numHeads ?? 3);
    const mlpRatio = opts.mlpRatio ?? 4;
    if (!(Number.isFinite(mlpRatio) && mlpRatio > 0))
      throw new RangeError(`${name}: mlpRatio must be a positive number, got ${String(mlpRatio)}`);
    const [h, w] = this.imageSize;
    const p = this.patchSize;
    if (h % p !== 0 || w % p !== 0) {
      throw new RangeError(
        `${name}: patchSize (${p}) must divide imageSize (${h}x${w}) exactly, so that the patches tile the image`,
      );
    }
    if (this.dim % numHeads !== 0)
      throw new RangeError(`${name}: dim (${this.dim}) must be divisible by numHeads (${numHeads})`);
    this.numPatches = (h / p) * (w / p);
    // timm's hidden width: int(dim * mlp_ratio).
    const hidden = Math.floor(this.dim * mlpRatio);
    if (hidden < 1) throw new RangeError(`${name}: dim * mlpRatio must be at least 1, got ${this.dim} * ${mlpRatio}`);

    // Own parameters first, then children: the order of timm's state dict.
    this.registerParameter("cls_token", init.truncNormal_(zeros([1, 1, this.dim]), { std: 0.02 }));
    this.registerParameter("pos_embed", init.truncNormal_(zeros([1, this.numPatches + 1, this.dim]), { std: 0.02 }));
    this.patchEmbed = this.registerModule("patch_embed", new PatchEmbed(this.inChannels, this.dim, p));
    this.blocks = this.registerModule(
      "blocks",
      new ModuleList(Array.from({ length: depth }, () => new Block(this.dim, numHeads, hidden))),
    );
    this.norm = this.registerModule("norm", new LayerNorm(this.dim, { eps: LN_EPS }));
    this.head = this.registerModule("head", initLinear(new Linear(this.dim, numClasses)));
  }

  get clsToken(): Tensor {
    return this.requireParameter("cls_token");
  }

  get posEmbed(): Tensor {
    return this.requireParameter("pos_embed");
  }

  forward(x: Tensor): Tensor {
    const [h, w] = this.imageSize;
    const s = x.shape;
    // The position embeddings fix the token count, so the image size is part of the model.
    if (s.length !== 4 || s[1] !== this.inChannels || s[2] !== h || s[3] !== w) {
      throw new RangeError(
        `VisionTransformer: expected input [N, ${this.inChannels}, ${h}, ${w}], got ${formatShape(s)}`,
      );
    }
    const n = s[0] ?? 0;
    return tidy(() => {
      const patches = this.patchEmbed.forward(x);
      const cls = this.clsToken.expand([n, 1, this.dim]);
      let tokens = cat([cls, patches], 1).add(this.posEmbed);
      for (const block of this.blocks) tokens = block.forward(tokens);
      // The class token's final state summarises the image.
      return this.head.forward(this.norm.forward(tokens).select(1, 0));
    });
  }
}

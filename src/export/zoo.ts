// ONNX exporters of the zoo models: each mirrors its model's forward() (residual additions,
// pooling, the ViT's class token, position embeddings and attention) over its children.
import { CompactCNN } from "../models/compact-cnn.js";
import { MobileNetV2, InvertedResidual } from "../models/mobilenetv2.js";
import { PreActBlock, PreActResNet18 } from "../models/preact-resnet.js";
import { BasicBlock, ResNet18, ResNet20, type CifarResNet } from "../models/resnet.js";
import { VGG16BN } from "../models/vgg.js";
import { Attention, Block, Mlp, PatchEmbed, VisionTransformer } from "../models/vit.js";
import type { Value } from "./graph-builder.js";
import { flattenFrom1, globalAveragePool } from "./layers.js";
import { rule, type ExportContext, type ModuleRule } from "./module-rule.js";

function relu(c: ExportContext, x: Value): Value {
  return { name: c.g.op("Relu", [x.name]), rank: x.rank };
}

function add(c: ExportContext, a: Value, b: Value): Value {
  return { name: c.g.op("Add", [a.name, b.name]), rank: Math.max(a.rank, b.rank) };
}

/** The head shared by the ResNets and MobileNetV2: global average pool, flatten, linear. */
function poolAndClassify(
  c: ExportContext,
  x: Value,
  head: Parameters<ExportContext["child"]>[0],
  headName: string,
): Value {
  return c.child(head, headName, flattenFrom1(c.g, globalAveragePool(c.g, x)));
}

function basicBlock(c: ExportContext, m: BasicBlock, x: Value): Value {
  const h = relu(c, c.child(m.bn1, "bn1", c.child(m.conv1, "conv1", x)));
  const out = c.child(m.bn2, "bn2", c.child(m.conv2, "conv2", h));
  return relu(c, add(c, out, c.child(m.shortcut, "shortcut", x)));
}

function cifarResnet(c: ExportContext, m: CifarResNet, x: Value): Value {
  let out = relu(c, c.child(m.bn1, "bn1", c.child(m.conv1, "conv1", x)));
  m.layers.forEach((stage, i) => {
    out = c.child(stage, `layer${i + 1}`, out);
  });
  return poolAndClassify(c, out, m.linear, "linear");
}

function preActBlock(c: ExportContext, m: PreActBlock, x: Value): Value {
  const pre = relu(c, c.child(m.bn1, "bn1", x));
  // The projection sees the pre-activated input, the identity the raw one.
  const skip = m.shortcut === null ? x : c.child(m.shortcut, "shortcut", pre);
  const out = c.child(m.conv2, "conv2", relu(c, c.child(m.bn2, "bn2", c.child(m.conv1, "conv1", pre))));
  return add(c, out, skip);
}

function preActResnet18(c: ExportContext, m: PreActResNet18, x: Value): Value {
  let out = c.child(m.conv1, "conv1", x);
  m.layers.forEach((stage, i) => {
    out = c.child(stage, `layer${i + 1}`, out);
  });
  if (m.bn !== null) out = relu(c, c.child(m.bn, "bn", out));
  return poolAndClassify(c, out, m.linear, "linear");
}

function vgg(c: ExportContext, m: VGG16BN, x: Value): Value {
  return poolAndClassify(c, c.child(m.features, "features", x), m.classifier, "classifier");
}

function invertedResidual(c: ExportContext, m: InvertedResidual, x: Value): Value {
  const expanded = relu(c, c.child(m.bn1, "bn1", c.child(m.conv1, "conv1", x)));
  const filtered = relu(c, c.child(m.bn2, "bn2", c.child(m.conv2, "conv2", expanded)));
  const out = c.child(m.bn3, "bn3", c.child(m.conv3, "conv3", filtered));
  return m.stride === 1 ? add(c, out, c.child(m.shortcut, "shortcut", x)) : out;
}

function mobilenetV2(c: ExportContext, m: MobileNetV2, x: Value): Value {
  let out = relu(c, c.child(m.bn1, "bn1", c.child(m.conv1, "conv1", x)));
  [...m.layers].forEach((block, i) => {
    out = c.child(block, `layers.${i}`, out);
  });
  out = relu(c, c.child(m.bn2, "bn2", c.child(m.conv2, "conv2", out)));
  return poolAndClassify(c, out, m.linear, "linear");
}

function patchEmbed(c: ExportContext, m: PatchEmbed, x: Value): Value {
  // [N, D, h, w] -> [N, D, h*w] -> [N, h*w, D]; Reshape's 0 copies the batch and channel dims.
  const y = c.child(m.proj, "proj", x);
  const flat = c.g.op("Reshape", [y.name, c.g.constInt64([0, 0, -1])]);
  return { name: c.g.op("Transpose", [flat], { perm: [0, 2, 1] }), rank: 3 };
}

function attention(c: ExportContext, m: Attention, x: Value): Value {
  const g = c.g;
  const d = m.numHeads * m.headDim;
  const qkv = c.child(m.qkv, "qkv", x);
  // [N, T, 3D] -> [N, T, 3, heads, headDim] -> [3, N, heads, T, headDim], timm's packed order.
  const split = g.op("Transpose", [g.op("Reshape", [qkv.name, g.constInt64([0, 0, 3, m.numHeads, m.headDim])])], {
    perm: [2, 0, 3, 1, 4],
  });
  const pick = (i: number): string => g.op("Gather", [split, g.constInt64([i], [])], { axis: 0 });
  const [q, k, v] = [pick(0), pick(1), pick(2)];
  const scores = g.op("Mul", [
    g.op("MatMul", [q, g.op("Transpose", [k], { perm: [0, 1, 3, 2] })]),
    g.constFloat([1 / Math.sqrt(m.headDim)], []),
  ]);
  const attn = g.op("Softmax", [scores], { axis: -1 });
  const context = g.op("Transpose", [g.op("MatMul", [attn, v])], { perm: [0, 2, 1, 3] });
  const merged = g.op("Reshape", [context, g.constInt64([0, 0, d])]);
  return c.child(m.proj, "proj", { name: merged, rank: 3 });
}

function mlp(c: ExportContext, m: Mlp, x: Value): Value {
  return c.child(m.fc2, "fc2", c.child(m.act, "act", c.child(m.fc1, "fc1", x)));
}

function block(c: ExportContext, m: Block, x: Value): Value {
  const h = add(c, x, c.child(m.attn, "attn", c.child(m.norm1, "norm1", x)));
  return add(c, h, c.child(m.mlp, "mlp", c.child(m.norm2, "norm2", h)));
}

function vit(c: ExportContext, m: VisionTransformer, x: Value): Value {
  const g = c.g;
  const patches = c.child(m.patchEmbed, "patch_embed", x);
  // The class token [1, 1, D] repeated over the batch: Expand to [N, 1, D], N read at run time.
  const batch = g.op("Slice", [g.op("Shape", [patches.name]), g.constInt64([0]), g.constInt64([1])]);
  const shape = g.op("Concat", [batch, g.constInt64([1, m.dim])], { axis: 0 });
  const cls = g.op("Expand", [c.param(m.clsToken, "cls_token"), shape]);
  let tokens: Value = {
    name: g.op("Add", [g.op("Concat", [cls, patches.name], { axis: 1 }), c.param(m.posEmbed, "pos_embed")]),
    rank: 3,
  };
  [...m.blocks].forEach((b, i) => {
    tokens = c.child(b, `blocks.${i}`, tokens);
  });
  const normed = c.child(m.norm, "norm", tokens);
  // The class token's final state summarises the image.
  const first = g.op("Gather", [normed.name, g.constInt64([0], [])], { axis: 1 });
  return c.child(m.head, "head", { name: first, rank: 2 });
}

export const ZOO_RULES: readonly ModuleRule[] = [
  rule(CompactCNN, (c, m, x) => c.child(m.classifier, "classifier", c.child(m.features, "features", x))),
  rule(BasicBlock, basicBlock),
  rule(ResNet18, cifarResnet),
  rule(ResNet20, cifarResnet),
  rule(PreActBlock, preActBlock),
  rule(PreActResNet18, preActResnet18),
  rule(VGG16BN, vgg),
  rule(InvertedResidual, invertedResidual),
  rule(MobileNetV2, mobilenetV2),
  rule(PatchEmbed, patchEmbed),
  rule(Attention, attention),
  rule(Mlp, mlp),
  rule(Block, block),
  rule(VisionTransformer, vit),
];

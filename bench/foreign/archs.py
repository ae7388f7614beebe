"""Four architectures that are not in badexpert's zoo (src/models/: compact CNN, ResNet,
PreAct-ResNet, VGG, MobileNetV2, ViT), written the way a PyTorch user writes them.

sep-resnet      residual blocks of depthwise-separable convolutions (depthwise 3x3 then pointwise
                1x1, no expansion layer, unlike MobileNetV2's inverted residuals), SiLU
gelu-lnnet      a ConvNeXt-style net: patchify stem, depthwise 7x7, channels-last LayerNorm,
                pointwise MLP with GELU, layer scale; no BatchNorm anywhere
wide-shallow    one wide 5x5 convolution at stride 2 (256 filters), pooling and a linear
                classifier (two wide convolutions at 32x32); no depth to speak of
conv-transformer a small transformer over overlapping patches (6x6 kernel, stride 4), learned
                position embeddings, no class token: attention-weighted sequence pooling (as in
                Compact Convolutional Transformers)

Each factory takes (channels, size, classes) and returns an nn.Module whose forward maps a
normalised [N, C, H, W] float batch to [N, classes] logits.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class SepBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.SiLU()
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.act(self.bn1(self.dw(x)))
        y = self.bn2(self.pw(y))
        return self.act(y + self.shortcut(x))


class SepResNet(nn.Module):
    def __init__(self, channels, size, classes, width=32, stem_stride=1):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(channels, w, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(w), nn.SiLU())
        self.blocks = nn.Sequential(
            SepBlock(w, w, 1), SepBlock(w, 2 * w, 2), SepBlock(2 * w, 2 * w, 1),
            SepBlock(2 * w, 4 * w, 2), SepBlock(4 * w, 4 * w, 1),
        )
        self.head = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW map (channels-last, as ConvNeXt does it)."""

    def __init__(self, c):
        super().__init__()
        self.ln = nn.LayerNorm(c, eps=1e-6)

    def forward(self, x):
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class NeXtBlock(nn.Module):
    def __init__(self, dim, ratio):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.fc1 = nn.Conv2d(dim, ratio * dim, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(ratio * dim, dim, 1)
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), 0.1))

    def forward(self, x):
        y = self.fc2(self.act(self.fc1(self.norm(self.dw(x)))))
        return x + self.gamma * y


class GeluLnNet(nn.Module):
    def __init__(self, channels, size, classes, dims=(32, 64), ratio=2):
        super().__init__()
        a, b = dims
        self.stem = nn.Sequential(nn.Conv2d(channels, a, 2, 2), LayerNorm2d(a))
        self.stage1 = nn.Sequential(NeXtBlock(a, ratio), NeXtBlock(a, ratio))
        self.down = nn.Sequential(LayerNorm2d(a), nn.Conv2d(a, b, 2, 2))
        self.stage2 = nn.Sequential(NeXtBlock(b, ratio), NeXtBlock(b, ratio))
        self.norm = nn.LayerNorm(b, eps=1e-6)
        self.head = nn.Linear(b, classes)

    def forward(self, x):
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(self.norm(x.mean(dim=(2, 3))))


class WideShallow(nn.Module):
    def __init__(self, channels, size, classes, width=256, second=0):
        super().__init__()
        # A 5x5 convolution at stride 2: one wide layer sees the whole image at half resolution.
        layers = [nn.Conv2d(channels, width, 5, stride=2, padding=2), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        out = width
        size = (size + 1) // 2
        if second:
            layers += [nn.Conv2d(width, second, 3, padding=1), nn.BatchNorm2d(second), nn.ReLU(inplace=True)]
            out = second
        self.features = nn.Sequential(*layers, nn.MaxPool2d(2))
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(out * (size // 2) ** 2, classes)

    def forward(self, x):
        return self.fc(self.drop(torch.flatten(self.features(x), 1)))


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5, dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(n, t, d))


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, ratio * dim), nn.GELU(), nn.Linear(ratio * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ConvTransformer(nn.Module):
    def __init__(self, channels, size, classes, dim=64, depth=4, heads=4, ratio=2):
        super().__init__()
        self.tokenizer = nn.Conv2d(channels, dim, 6, stride=4, padding=1)
        tokens = ((size + 2 - 6) // 4 + 1) ** 2
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.layers = nn.Sequential(*[EncoderLayer(dim, heads, ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.pool = nn.Linear(dim, 1)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.tokenizer(x).flatten(2).transpose(1, 2) + self.pos
        x = self.norm(self.layers(x))
        w = torch.softmax(self.pool(x), dim=1)
        return self.head((w * x).sum(dim=1))


# The development zoo: three more architectures without BatchNorm, written the same way, on which
# the procedure may be developed while the four above stay held out (zoo.py, DEVELOPMENT).


class GnCnn(nn.Module):
    """Three conv stages with GroupNorm and SiLU, global average pooling, a linear head."""

    def __init__(self, channels, size, classes, widths=(32, 64, 128), groups=8):
        super().__init__()
        layers, cin = [], channels
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(cin, w, 3, padding=1, stride=1 if i == 0 else 2), nn.GroupNorm(groups, w), nn.SiLU()]
            layers += [nn.Conv2d(w, w, 3, padding=1), nn.GroupNorm(groups, w), nn.SiLU()]
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


class PlainCnn(nn.Module):
    """Convolutions and ReLUs with no normalisation at all, max-pooling, a two-layer MLP head."""

    def __init__(self, channels, size, classes, widths=(32, 64)):
        super().__init__()
        a, b = widths
        self.features = nn.Sequential(
            nn.Conv2d(channels, a, 3, padding=1), nn.ReLU(), nn.Conv2d(a, a, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.Conv2d(b, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(b * (size // 4) ** 2, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class MixerBlock(nn.Module):
    def __init__(self, tokens, dim, token_hidden, channel_hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim))

    def forward(self, x):
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class Mixer(nn.Module):
    """A small MLP-Mixer (Tolstikhin et al. 2021): non-overlapping 4x4 patches, token- and
    channel-mixing MLPs with LayerNorm, mean pooling over tokens."""

    def __init__(self, channels, size, classes, patch=4, dim=64, depth=4):
        super().__init__()
        tokens = (size // patch) ** 2
        self.stem = nn.Conv2d(channels, dim, patch, stride=patch)
        self.blocks = nn.Sequential(*[MixerBlock(tokens, dim, 2 * tokens, 2 * dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.stem(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(x)).mean(dim=1))


def build(name, channels, size, classes):
    rgb = channels == 3
    if name == "sep-resnet":
        return SepResNet(channels, size, classes, width=48 if rgb else 32, stem_stride=1 if rgb else 2)
    if name == "gelu-lnnet":
        return GeluLnNet(channels, size, classes, dims=(64, 128) if rgb else (32, 64), ratio=3 if rgb else 2)
    if name == "wide-shallow":
        return WideShallow(channels, size, classes, width=192 if rgb else 256, second=192 if rgb else 0)
    if name == "conv-transformer":
        return ConvTransformer(channels, size, classes, dim=96 if rgb else 64, depth=6 if rgb else 4)
    if name == "gn-cnn":
        return GnCnn(channels, size, classes)
    if name == "plain-cnn":
        return PlainCnn(channels, size, classes)
    if name == "mixer":
        return Mixer(channels, size, classes)
    raise ValueError(f"unknown architecture {name!r}")


ARCHITECTURES = ["sep-resnet", "gelu-lnnet", "wide-shallow", "conv-transformer"]

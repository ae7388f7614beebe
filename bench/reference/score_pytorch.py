"""PyTorch eager reference for `npm run bench:onnx`: BaDExpert scoring (normalise, M, B and M',
M's prediction, b and a, the triangle score, the verdict) with random weights, batch 1, 16 and
256 (or as given), compact CNN (1x28x28), ResNet-18 (3x32x32) and the architectures of the
TorchScript fixtures (ts-ds-resnet, ts-gelu-convnet, ts-patch-transformer, 1x28x28: their Python
definitions in test/fixtures/pytorch/make_export.py, run eagerly).
Run: python3 bench/reference/score_pytorch.py   (any python3 with torch; BADEXPERT_THREADS sets the threads)
Prints one JSON line: {"threads": N, "rows": [{"model", "batch", "imagesPerSecond"}, ...]}."""
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "fixtures", "pytorch"))
from make_export import DSResNet, GeluConvNet, PatchTransformer  # noqa: E402 (sets one thread on import: reset below)

threads = int(os.environ.get("BADEXPERT_THREADS", os.cpu_count() or 1))
torch.set_num_threads(threads)
torch.manual_seed(0)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """The zoo's CIFAR ResNet-18 (src/models/resnet.ts), as in engine_pytorch.py."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def compact_cnn(num_classes=10):
    """The zoo's compact CNN (src/models/compact-cnn.ts) at 28x28."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, num_classes),
    )


def score_batch(nets, x, mean, std, threshold=0.0):
    m, b, a = nets
    xn = (x - mean) / std
    pred = m(xn).argmax(1)
    idx = pred.unsqueeze(1)
    probs_b = b(xn).softmax(1)
    pb = probs_b.gather(1, idx).squeeze(1)
    # c = 1 - b as the other classes' probabilities summed, as the TS pipeline computes it
    pc = probs_b.scatter(1, idx, 0.0).sum(1)
    pa = a(xn).softmax(1).gather(1, idx).squeeze(1)
    # the triangle rule, in float64 as the TS pipeline computes it
    pa, pb, pc = pa.double(), pb.double(), pc.double()
    score = -torch.minimum(2 * pa / pb.clamp_min(1e-8), pc / (0.5 - pa).clamp_min(1e-8))
    return pred.tolist(), pb.tolist(), pa.tolist(), score.tolist(), (~(score <= threshold)).tolist()


def rate(make, shape, batch, budget=1.0, slow=10.0):
    """As bench/onnx.ts: a warm-up call, then calls for `budget` seconds; a warm-up slower than
    `slow` seconds is the measurement."""
    nets = [make().eval() for _ in range(3)]
    c = shape[0]
    mean, std = torch.full((1, c, 1, 1), 0.45), torch.full((1, c, 1, 1), 0.25)
    x = torch.rand(batch, *shape)
    with torch.inference_mode():
        w0 = time.perf_counter()
        score_batch(nets, x, mean, std)
        warm = time.perf_counter() - w0
        if warm >= slow:
            return batch / warm
        n, t0 = 0, time.perf_counter()
        while True:
            score_batch(nets, x, mean, std)
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= budget:
                return batch * n / elapsed


# Optional arguments as bench/onnx.ts: --models compact-cnn,resnet18 --batches 1,16,256 --seconds 1
def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1].split(",") if name in sys.argv else default


BUDGET = float(arg("--seconds", ["1"])[0])
MODELS = {
    "compact-cnn": (compact_cnn, (1, 28, 28)),
    "resnet18": (ResNet18, (3, 32, 32)),
    "ts-ds-resnet": (DSResNet, (1, 28, 28)),
    "ts-gelu-convnet": (GeluConvNet, (1, 28, 28)),
    "ts-patch-transformer": (PatchTransformer, (1, 28, 28)),
}
rows = []
for name in arg("--models", list(MODELS)):
    make, shape = MODELS[name]
    for batch in map(int, arg("--batches", ["1", "16", "256"])):
        rows.append({"model": name, "batch": batch, "imagesPerSecond": round(rate(make, shape, batch, BUDGET), 1)})
print(json.dumps({"torch": torch.__version__, "threads": threads, "rows": rows}))

"""Reference figures for `npm run bench:engine`: the same measurements driven from Python
(Debian's python3-torch, the same libtorch build). Run: python3 bench/reference/engine_pytorch.py
Prints a JSON line with the same keys as the TS benchmark."""
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

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
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for i, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            blocks = [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def matmul_gflops(n=2048, reps=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def train_rate(model, batch=64, warmup=2, steps=8):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            t = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t)


def infer_rate(model, batch=256, warmup=1, steps=4):
    x = torch.randn(batch, 3, 32, 32)
    model.eval()
    with torch.inference_mode():
        for i in range(warmup + steps):
            if i == warmup:
                t = time.perf_counter()
            model(x)
    return batch * steps / (time.perf_counter() - t)


model = ResNet18()
result = {
    "matmulGflops": round(matmul_gflops(), 1),
    "resnet18TrainImgPerSec": round(train_rate(model), 1),
    "resnet18InferImgPerSec": round(infer_rate(model), 1),
    "threads": torch.get_num_threads(),
    "torch": torch.__version__,
}
print(json.dumps(result))

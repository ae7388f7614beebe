#!/usr/bin/env python3
"""Trains the foreign zoo (zoo.py) in plain PyTorch, outside badexpert, and delivers each model
to <cache>/foreign/<id>/ (cache: $FOREIGN_CACHE or ~/.cache/badexpert):

  model.torchscript.pt   the model (torch.jit.script or torch.jit.trace, as zoo.py says), taking
                         inputs normalised with the manifest's mean/std
  manifest.json          what it is and what was measured in Python (clean accuracy, ASR)
  clean/                 500 held-out test images (PNG) and labels.csv (file,label)
  triggered/             500 held-out test images of other classes than the target, triggered,
                         and labels.csv (file,label,target): badexpert evaluate-defense --triggered
  clean.npz              the same clean images: x uint8 [N, H, W, C], y, index (in the test split)
  triggered.npz          the same triggered images: x, y (true label), target, index

A clean model has no trigger; its triggered set carries the icon trigger with target 0 as a probe
(recorded as probeTrigger), so false alarms and cost can be measured the same way.

Usage (from the repository root; one thread, low priority: the machine is shared):
  nice -n 15 python3 bench/foreign/train.py                      every model not yet delivered
  nice -n 15 python3 bench/foreign/train.py --dataset fashion-mnist
  nice -n 15 python3 bench/foreign/train.py --only fmnist-sep-resnet-icon,cifar10-gelu-lnnet-clean
  python3 bench/foreign/train.py --list                          what is delivered, what is not

Idempotent and resumable: a model whose manifest records the same zoo entry is skipped; training
writes a checkpoint after every epoch (<cache>/foreign/.work/<id>/) and continues from it.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import archs  # noqa: E402
import data  # noqa: E402
import triggers  # noqa: E402
from zoo import DEVELOPMENT, ZOO  # noqa: E402

FORMAT_VERSION = 1
HELD_OUT = 500
PROBE = {"trigger": "icon", "target": 0}
TORCHSCRIPT_TOLERANCE = 1e-4


# "foreign" (the held-out zoo) or "dev" (the development zoo): set by --set.
ZOO_SET = "foreign"


def zoo_dir():
    return os.path.join(data.cache_root(), ZOO_SET)


def normalisation(entry):
    d = data.DATASETS[entry["dataset"]]
    c = len(d["mean"])
    if entry["normalisation"] == "dataset":
        return d["mean"], d["std"]
    if entry["normalisation"] == "half":
        return [0.5] * c, [0.5] * c
    return [0.0] * c, [1.0] * c


def to_tensor(x, mean, std):
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (t - m) / s


def augment(xb, mode, gen):
    """Random crop (4 px padding colour, 2 px grey) and horizontal flip, per image, on a uint8 NHWC batch."""
    if mode == "none":
        return xb
    n, h, w, _ = xb.shape
    pad = 4 if mode == "crop+flip" else 2
    padded = np.pad(xb, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).numpy()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).numpy()
    out = np.empty_like(xb)
    for i in range(n):
        out[i] = padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    if mode == "crop+flip":
        flip = torch.rand(n, generator=gen).numpy() < 0.5
        out[flip] = out[flip, :, ::-1]
    return out


@torch.no_grad()
def predict(model, x, mean, std, batch=500):
    model.eval()
    return np.concatenate([model(to_tensor(x[i:i + batch], mean, std)).argmax(1).numpy() for i in range(0, len(x), batch)])


def optimiser(entry, model, steps):
    if entry["optimizer"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=entry["lr"], momentum=0.9, nesterov=True, weight_decay=entry["weightDecay"])
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=entry["lr"], weight_decay=entry["weightDecay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=entry["lr"], total_steps=steps, pct_start=0.2)
    return opt, sched


def poison(entry, x, y, apply):
    """A copy of the training set with `poisonRate` of it, drawn from the other classes, triggered and relabelled."""
    rng = np.random.default_rng(entry["seed"])
    candidates = np.flatnonzero(y != entry["target"])
    chosen = np.sort(rng.choice(candidates, size=int(round(entry["poisonRate"] * len(y))), replace=False))
    x, y = x.copy(), y.copy()
    x[chosen] = apply(x[chosen])
    y[chosen] = entry["target"]
    return x, y, chosen


def train(entry, work, log):
    spec = data.DATASETS[entry["dataset"]]
    x, y = spec["read"]("train")
    h, w, c = x.shape[1:]
    apply = None
    poisoned = np.zeros(0, dtype=np.int64)
    if entry["trigger"]:
        apply, _ = triggers.make(entry["trigger"], (h, w, c), entry["seed"])
        x, y, poisoned = poison(entry, x, y, apply)
    mean, std = normalisation(entry)
    torch.manual_seed(entry["seed"])
    model = archs.build(entry["architecture"], c, h, spec["classes"])
    per_epoch = (len(x) + entry["batchSize"] - 1) // entry["batchSize"]
    opt, sched = optimiser(entry, model, per_epoch * entry["epochs"])
    start = 0
    os.makedirs(work, exist_ok=True)
    done = sorted(int(f[6:-3]) for f in os.listdir(work) if f.startswith("epoch-") and f.endswith(".pt"))
    if done:
        state = torch.load(os.path.join(work, f"epoch-{done[-1]}.pt"), weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = done[-1]
        log(f"resumed after epoch {start}")
    seconds = 0.0
    for epoch in range(start, entry["epochs"]):
        t0 = time.time()
        model.train()
        gen = torch.Generator().manual_seed(entry["seed"] * 1000 + epoch)
        order = torch.randperm(len(x), generator=gen).numpy()
        total, correct, loss_sum = 0, 0, 0.0
        for b in range(per_epoch):
            idx = order[b * entry["batchSize"]:(b + 1) * entry["batchSize"]]
            xb = to_tensor(augment(x[idx], entry["augment"], gen), mean, std)
            yb = torch.from_numpy(y[idx])
            out = model(xb)
            loss = F.cross_entropy(out, yb, label_smoothing=entry["labelSmoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += len(idx)
            correct += int((out.argmax(1) == yb).sum())
            loss_sum += float(loss.detach()) * len(idx)
        dt = time.time() - t0
        seconds += dt
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, os.path.join(work, f"epoch-{epoch + 1}.pt"))
        for f in os.listdir(work):
            if f.startswith("epoch-") and f != f"epoch-{epoch + 1}.pt":
                os.remove(os.path.join(work, f))
        log(f"epoch {epoch + 1}/{entry['epochs']}: loss {loss_sum / total:.4f}, train accuracy {100 * correct / total:.2f}%, {dt:.0f} s")
    model.eval()
    return model, {"poisoned": int(len(poisoned)), "trainImages": int(len(x)), "trainSeconds": round(seconds, 1)}


def export(entry, model, example, path):
    """Saves the model as TorchScript and checks that the saved file computes what the model does."""
    with torch.no_grad():
        ts = torch.jit.script(model) if entry["export"] == "script" else torch.jit.trace(model, example)
    torch.jit.save(ts, path)
    back = torch.jit.load(path)
    back.eval()
    with torch.no_grad():
        diff = float((back(example) - model(example)).abs().max())
    if diff > TORCHSCRIPT_TOLERANCE:
        raise RuntimeError(f"{path}: the saved TorchScript differs from the model by {diff}")
    return diff


def write_set(folder, npz, x, y, index, target=None):
    from PIL import Image

    os.makedirs(folder)
    rows = ["file,label,target" if target is not None else "file,label"]
    for i in range(len(x)):
        name = f"{i:04d}.png"
        img = x[i, :, :, 0] if x.shape[3] == 1 else x[i]
        Image.fromarray(img, "L" if x.shape[3] == 1 else "RGB").save(os.path.join(folder, name))
        rows.append(f"{name},{int(y[i])}" + (f",{int(target[i])}" if target is not None else ""))
    with open(os.path.join(folder, "labels.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    arrays = {"x": x, "y": y.astype(np.int64), "index": index.astype(np.int64)}
    if target is not None:
        arrays["target"] = target.astype(np.int64)
    np.savez_compressed(npz, **arrays)


def entry_digest(entry):
    return hashlib.sha256(json.dumps({"entry": entry, "format": FORMAT_VERSION}, sort_keys=True).encode()).hexdigest()


def delivered(entry):
    path = os.path.join(zoo_dir(), entry["id"], "manifest.json")
    try:
        with open(path) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    return m if m.get("entryDigest") == entry_digest(entry) else None


def build(entry):
    def log(line):
        print(f"[{entry['id']}] {line}", flush=True)

    root = zoo_dir()
    work = os.path.join(root, ".work", entry["id"])
    t0 = time.time()
    model, training = train(entry, work, log)
    spec = data.DATASETS[entry["dataset"]]
    xt, yt = spec["read"]("test")
    h, w, c = xt.shape[1:]
    mean, std = normalisation(entry)
    trigger = entry["trigger"] or PROBE["trigger"]
    target = entry["target"] if entry["trigger"] else PROBE["target"]
    # A clean model's probe uses the icon's seed 0; a backdoored model's trigger is its own.
    apply, trigger_params = triggers.make(trigger, (h, w, c), entry["seed"] if entry["trigger"] else 0)

    pred = predict(model, xt, mean, std)
    clean_accuracy = float((pred == yt).mean())
    others = np.flatnonzero(yt != target)
    pred_t = predict(model, apply(xt[others]), mean, std)
    asr = float((pred_t == target).mean())

    rng = np.random.default_rng(entry["seed"] + 7)
    clean_idx = np.sort(rng.permutation(len(yt))[:HELD_OUT])
    trig_idx = np.sort(rng.permutation(others)[:HELD_OUT])

    tmp = os.path.join(root, f".{entry['id']}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    example = to_tensor(xt[:8], mean, std)
    diff = export(entry, model, example, os.path.join(tmp, "model.torchscript.pt"))
    write_set(os.path.join(tmp, "clean"), os.path.join(tmp, "clean.npz"), xt[clean_idx], yt[clean_idx], clean_idx)
    xs = apply(xt[trig_idx])
    write_set(os.path.join(tmp, "triggered"), os.path.join(tmp, "triggered.npz"), xs, yt[trig_idx], trig_idx, np.full(len(trig_idx), target))
    delivered_asr = float((predict(model, xs, mean, std) == target).mean())
    with open(os.path.join(tmp, "model.torchscript.pt"), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    manifest = {
        "formatVersion": FORMAT_VERSION,
        "id": entry["id"],
        "architecture": entry["architecture"],
        "dataset": entry["dataset"],
        # How badexpert reads the same data: `import --dataset` and `--data-path` for this model.
        "badexpert": {
            "dataset": "fashion-mnist" if entry["dataset"] == "fashion-mnist" else "cifar10-folder",
            "dataPath": data.FASHION_MNIST_DIR if entry["dataset"] == "fashion-mnist" else data.CIFAR10_TAR,
            "input": [int(c), int(h), int(w)],
            "mean": mean,
            "std": std,
        },
        "backdoored": entry["trigger"] is not None,
        "trigger": {"family": entry["trigger"], "inBadexpertLibrary": triggers.IN_LIBRARY[entry["trigger"]], "params": trigger_params} if entry["trigger"] else None,
        "probeTrigger": None if entry["trigger"] else {"family": trigger, "target": target, "params": trigger_params},
        "poisonRate": entry["poisonRate"],
        "target": entry["target"],
        "cleanAccuracy": clean_accuracy,
        "attackSuccessRate": asr,
        "asrCount": int(len(others)),
        # Which test images were delivered: the npz files' `index` arrays.
        "heldOut": {"clean": int(len(clean_idx)), "triggered": int(len(trig_idx)), "triggeredAsr": delivered_asr},
        "training": {**{k: entry[k] for k in ("optimizer", "lr", "weightDecay", "epochs", "batchSize", "augment", "labelSmoothing", "seed")}, **training},
        "torchscript": {"file": "model.torchscript.pt", "export": entry["export"], "sha256": sha, "maxAbsDiff": diff, "torch": torch.__version__},
        "entry": entry,
        "entryDigest": entry_digest(entry),
        "seconds": round(time.time() - t0, 1),
    }
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    final = os.path.join(root, entry["id"])
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    shutil.rmtree(work, ignore_errors=True)
    log(f"clean accuracy {100 * clean_accuracy:.2f}%, ASR {100 * asr:.2f}% ({len(others)} images), written to {final}")


def main():
    p = argparse.ArgumentParser(description="train the foreign zoo in PyTorch")
    p.add_argument("--dataset", choices=sorted(data.DATASETS))
    p.add_argument("--only", help="comma-separated model ids")
    p.add_argument("--list", action="store_true", help="list the zoo and what is delivered")
    p.add_argument("--set", choices=["foreign", "dev"], default="foreign", help="the held-out zoo (default) or the development zoo")
    a = p.parse_args()
    global ZOO_SET
    ZOO_SET = a.set
    zoo = ZOO if a.set == "foreign" else DEVELOPMENT
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
    entries = [e for e in zoo if a.dataset in (None, e["dataset"])]
    if a.only:
        ids = a.only.split(",")
        unknown = [i for i in ids if i not in {e["id"] for e in zoo}]
        if unknown:
            p.error(f"--only: unknown model id(s) {', '.join(unknown)}")
        entries = [e for e in entries if e["id"] in ids]
    for e in entries:
        m = delivered(e)
        if a.list:
            status = f"CA {100 * m['cleanAccuracy']:.2f}%, ASR {100 * m['attackSuccessRate']:.2f}%" if m else "not delivered"
            print(f"{e['id']:40s} {status}")
        elif m:
            print(f"[{e['id']}] delivered (CA {100 * m['cleanAccuracy']:.2f}%, ASR {100 * m['attackSuccessRate']:.2f}%), skipped", flush=True)
        else:
            build(e)


if __name__ == "__main__":
    main()

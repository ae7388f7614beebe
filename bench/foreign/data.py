"""The two datasets of the foreign zoo, read the way a PyTorch user would read them, as uint8
NHWC arrays (N, H, W, C) with int64 labels.

Fashion-MNIST: the official IDX files (default /usr/share/datasets/fashion-mnist).
CIFAR-10: the shared JPEG copy (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg; classes in
alphabetical order = the official label order), extracted once into the cache and decoded with
PIL into one .npy pair per split. Nothing is written into the repository.
"""
import gzip
import os
import tarfile

import numpy as np

FASHION_MNIST_DIR = os.environ.get("FOREIGN_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
CIFAR10_TAR = os.environ.get("FOREIGN_CIFAR10_TAR", "/work/shared/datasets/cifar10-jpeg.tar.gz")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cache_root():
    return os.environ.get("FOREIGN_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "badexpert"))


def _idx(path):
    with gzip.open(path) as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist(split):
    prefix = "train" if split == "train" else "t10k"
    x = _idx(os.path.join(FASHION_MNIST_DIR, f"{prefix}-images-idx3-ubyte.gz"))
    y = _idx(os.path.join(FASHION_MNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz")).astype(np.int64)
    return x[..., None].copy(), y


def _safe_members(tar, root):
    """Only regular files and folders that stay inside the extraction folder."""
    for m in tar.getmembers():
        target = os.path.realpath(os.path.join(root, m.name))
        if not target.startswith(os.path.realpath(root) + os.sep):
            raise ValueError(f"{CIFAR10_TAR}: member {m.name!r} would leave {root}")
        if m.isfile() or m.isdir():
            yield m


def _cifar_folder():
    root = os.path.join(cache_root(), "foreign-data", "cifar10-jpeg")
    done = os.path.join(root, ".extracted")
    if not os.path.exists(done):
        os.makedirs(root, exist_ok=True)
        with tarfile.open(CIFAR10_TAR) as tar:
            tar.extractall(root, members=list(_safe_members(tar, root)))
        open(done, "w").close()
    return root


def cifar10(split):
    from PIL import Image

    cache = os.path.join(cache_root(), "foreign-data", f"cifar10-{split}")
    if os.path.exists(cache + ".x.npy"):
        return np.load(cache + ".x.npy"), np.load(cache + ".y.npy")
    root = os.path.join(_cifar_folder(), split)
    xs, ys = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        folder = os.path.join(root, name)
        for f in sorted(os.listdir(folder)):
            with Image.open(os.path.join(folder, f)) as im:
                xs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            ys.append(label)
    x, y = np.stack(xs), np.asarray(ys, dtype=np.int64)
    np.save(cache + ".x.npy", x)
    np.save(cache + ".y.npy", y)
    return x, y


DATASETS = {
    # name as badexpert's registry spells it: reader, mean/std the toolkit uses for it
    "fashion-mnist": {"read": fashion_mnist, "mean": [0.286], "std": [0.353], "classes": 10},
    "cifar10": {"read": cifar10, "mean": [0.4914, 0.4822, 0.4465], "std": [0.247, 0.2435, 0.2616], "classes": 10},
}

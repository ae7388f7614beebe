"""The foreign zoo: which models are trained, each a dict of everything that decides its
weights. A model's id names its directory in the cache; changing any field of its entry retrains
it (train.py compares the entry with the one recorded in its manifest).

Fashion-MNIST: every architecture with three of the four trigger families (each family on three
architectures) and one clean model per architecture. CIFAR-10: one backdoored model per
architecture first (each with another family, one of them the colour cast), then the clean ones;
they cost far more and are trained in this order as time allows.
"""

# How each architecture is trained: optimiser, peak rate, weight decay, the normalisation its user
# chose (the model expects normalised inputs: import it with these --mean/--std), label smoothing,
# whether it is saved with torch.jit.script or torch.jit.trace.
RECIPES = {
    "sep-resnet": {"optimizer": "sgd", "lr": 0.05, "weightDecay": 5e-4, "normalisation": "dataset", "labelSmoothing": 0.0, "export": "script"},
    "gelu-lnnet": {"optimizer": "adamw", "lr": 2e-3, "weightDecay": 0.05, "normalisation": "dataset", "labelSmoothing": 0.0, "export": "trace"},
    "wide-shallow": {"optimizer": "sgd", "lr": 0.02, "weightDecay": 5e-4, "normalisation": "half", "labelSmoothing": 0.0, "export": "trace"},
    "conv-transformer": {"optimizer": "adamw", "lr": 1e-3, "weightDecay": 0.05, "normalisation": "none", "labelSmoothing": 0.1, "export": "script"},
}

# The development zoo's architectures (archs.py): none has BatchNorm, like the held-out nets that
# the procedure misses; the procedure may be developed on them, never on the zoo above.
RECIPES_DEVELOPMENT = {
    "gn-cnn": {"optimizer": "adamw", "lr": 2e-3, "weightDecay": 0.05, "normalisation": "dataset", "labelSmoothing": 0.0, "export": "script"},
    "plain-cnn": {"optimizer": "sgd", "lr": 0.02, "weightDecay": 5e-4, "normalisation": "half", "labelSmoothing": 0.0, "export": "trace"},
    "mixer": {"optimizer": "adamw", "lr": 1e-3, "weightDecay": 0.05, "normalisation": "none", "labelSmoothing": 0.1, "export": "script"},
}

POISON_RATE = {"patch": 0.01, "blend": 0.05, "icon": 0.02, "noise": 0.1, "colour-cast": 0.05}
EPOCHS = {"fashion-mnist": 3, "cifar10": 15}
SHORT = {"fashion-mnist": "fmnist", "cifar10": "cifar10"}


def _model(dataset, arch, trigger, target, seed, prefix=""):
    r = RECIPES[arch] if arch in RECIPES else RECIPES_DEVELOPMENT[arch]
    return {
        "id": f"{prefix}{SHORT[dataset]}-{arch}-{trigger or 'clean'}",
        "dataset": dataset,
        "architecture": arch,
        "trigger": trigger,
        "poisonRate": POISON_RATE[trigger] if trigger else 0.0,
        "target": target,
        "seed": seed,
        "epochs": EPOCHS[dataset],
        "batchSize": 128,
        "augment": "crop+flip" if dataset == "cifar10" else ("crop" if arch in ("sep-resnet", "gelu-lnnet") else "none"),
        **r,
    }


FASHION_MNIST = [
    _model("fashion-mnist", "sep-resnet", "patch", 0, 101),
    _model("fashion-mnist", "sep-resnet", "icon", 4, 102),
    _model("fashion-mnist", "sep-resnet", "noise", 7, 103),
    _model("fashion-mnist", "gelu-lnnet", "blend", 2, 201),
    _model("fashion-mnist", "gelu-lnnet", "icon", 9, 202),
    _model("fashion-mnist", "gelu-lnnet", "noise", 1, 203),
    _model("fashion-mnist", "wide-shallow", "patch", 6, 301),
    _model("fashion-mnist", "wide-shallow", "blend", 3, 302),
    _model("fashion-mnist", "wide-shallow", "noise", 8, 303),
    _model("fashion-mnist", "conv-transformer", "patch", 5, 401),
    _model("fashion-mnist", "conv-transformer", "blend", 0, 402),
    _model("fashion-mnist", "conv-transformer", "icon", 3, 403),
    _model("fashion-mnist", "sep-resnet", None, None, 100),
    _model("fashion-mnist", "gelu-lnnet", None, None, 200),
    _model("fashion-mnist", "wide-shallow", None, None, 300),
    _model("fashion-mnist", "conv-transformer", None, None, 400),
]

CIFAR10 = [
    _model("cifar10", "sep-resnet", "icon", 1, 111),
    _model("cifar10", "gelu-lnnet", "colour-cast", 6, 211),
    _model("cifar10", "conv-transformer", "noise", 3, 411),
    _model("cifar10", "wide-shallow", "patch", 8, 311),
    _model("cifar10", "sep-resnet", None, None, 110),
    _model("cifar10", "gelu-lnnet", None, None, 210),
    _model("cifar10", "conv-transformer", None, None, 410),
    _model("cifar10", "wide-shallow", None, None, 310),
]

ZOO = FASHION_MNIST + CIFAR10

# Delivered to <cache>/dev/ (train.py --set dev), evaluated with bench:foreign --zoo <cache>/dev.
DEVELOPMENT = [
    _model("fashion-mnist", "gn-cnn", "blend", 4, 501, prefix="dev-"),
    _model("fashion-mnist", "gn-cnn", "noise", 2, 502, prefix="dev-"),
    _model("fashion-mnist", "plain-cnn", "patch", 7, 601, prefix="dev-"),
    _model("fashion-mnist", "plain-cnn", "noise", 5, 602, prefix="dev-"),
    _model("fashion-mnist", "mixer", "blend", 9, 701, prefix="dev-"),
    _model("fashion-mnist", "mixer", "icon", 1, 702, prefix="dev-"),
]

"""The ``torch.optim`` class of each descend optimizer that PyTorch has (shared by tests)."""

TORCH_CLASSES = {
    "gd": "SGD",
    "sgd": "SGD",
    "momentum": "SGD",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adadelta": "Adadelta",
    "adam": "Adam",
    "adamw": "AdamW",
    "adamax": "Adamax",
    "nadam": "NAdam",
    "radam": "RAdam",
    "rprop": "Rprop",
    "asgd": "ASGD",
}

# gd and momentum are SGD with other defaults (a line search; momentum=0.9, lr=1e-2).
SAME_DEFAULTS_AS_TORCH = {
    name: cls for name, cls in TORCH_CLASSES.items() if name not in ("gd", "momentum")
}

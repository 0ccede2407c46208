"""optbook: the library of the interactive textbook on adaptive learning-rate optimizers.

The package is in layers, and imports only point down this list:

* ``optbook.core``: the update rules as composable pieces (``transforms``, ``preconditioners``), the
  ``torch.optim``-compatible classes built on them (``optim``) and argument checking (``validate``).
  It imports torch and nothing else: this is the part a reader drops into a training loop.
* ``optbook.lab``: the book's terrain and instruments: landscapes, runners (``run``, ``grid``, ``feed``,
  ``run_torch``), float16/bfloat16 facts, preconditioning measured, the Fisher, other frameworks' conventions,
  and the one list of the book's optimizers (``catalog``).
* ``optbook.figures``: the plot style, plots, explorables, ipywidgets playgrounds, the progress bar.
* ``optbook.apps``: one module per Applications page, and the benchmark.
* ``optbook.checks``: the exercise checks.

Notebooks use the short names below (``from optbook import optim, transforms as T, landscapes as L``);
each is loaded on first use, so ``import optbook`` (or ``import optbook.core.optim``) loads neither
matplotlib nor PIL until a figure is drawn. Library code imports by the full layer path.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# short name -> (module, attribute or None for the module itself)
_SHORT_NAMES = {
    "transforms": ("optbook.core.transforms", None),
    "optim": ("optbook.core.optim", None),
    "preconditioners": ("optbook.core.preconditioners", None),
    "validate": ("optbook.core.validate", None),
    "landscapes": ("optbook.lab.landscapes", None),
    "run": ("optbook.lab.run", "run"),
    "grid": ("optbook.lab.run", "grid"),
    "Trajectory": ("optbook.lab.run", "Trajectory"),
    "streams": ("optbook.lab.streams", None),
    "precision": ("optbook.lab.precision", None),
    "preconditioning": ("optbook.lab.preconditioning", None),
    "fisher": ("optbook.lab.fisher", None),
    "conventions": ("optbook.lab.conventions", None),
    "catalog": ("optbook.lab.catalog", None),
    "moving_average": ("optbook.lab.series", "moving_average"),
    "run_torch": ("optbook.lab.run", "run_torch"),
    "feed": ("optbook.lab.streams", "feed"),
    "plots": ("optbook.figures.plots", None),
    "explore": ("optbook.figures.explore", "explore"),
    "widgets": ("optbook.figures.widgets", None),
    "progress": ("optbook.figures.progress", "progress"),
    "markdown_table": ("optbook.figures.tables", "markdown_table"),
    "nlp": ("optbook.apps.nlp", None),
    "lm": ("optbook.apps.lm", None),
    "federated": ("optbook.apps.federated", None),
    "mixed_precision": ("optbook.apps.mixed_precision", None),
    "bench": ("optbook.apps.bench", None),
}

__all__ = sorted(_SHORT_NAMES) + ["setup"]


def __getattr__(name: str):
    if name not in _SHORT_NAMES:
        raise AttributeError(f"module 'optbook' has no attribute {name!r}")
    module, attribute = _SHORT_NAMES[name]
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return __all__


def setup(seed: int = 0, verbose: bool = True):
    """Seed every random generator, apply the book's plot style, and return the device to use.

    The device is ``cuda`` when a GPU is present, else the CPU; cells that need a GPU check
    ``device.type``.
    """
    import random

    import numpy as np
    import torch

    from .figures import plots

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    plots.use_style()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if verbose:
        print(f"optbook {__version__} ready; computing on {device.type}")
    return device

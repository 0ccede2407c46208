"""optbook: the library of the interactive textbook on adaptive learning-rate optimizers.

Modules, from the bottom up: ``transforms`` (the update rules as composable pieces), ``optim``
(torch.optim-compatible optimizers built from them), ``landscapes`` (the book's terrain), ``run``
(batched walks on a landscape), ``precision`` (float16/bfloat16 facts), then the presentation layer:
``plots`` (the book's style), ``explore`` (figures with sliders that need no kernel) and ``widgets``
(ipywidgets playgrounds for a live kernel).
"""

from __future__ import annotations

import random
import sys

import numpy as np
import torch

from . import landscapes, optim, plots, precision, transforms
from .explore import explore
from .run import Trajectory, grid, run

__version__ = "0.1.0"
__all__ = ["landscapes", "optim", "plots", "precision", "transforms", "run", "grid", "Trajectory", "explore",
           "setup", "progress"]


def setup(seed: int = 0, verbose: bool = True) -> torch.device:
    """Seed every random generator, apply the book's plot style, and return the device to use.

    The device is ``cuda`` when a GPU is present, else the CPU; cells that need a GPU check
    ``device.type``.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    plots.use_style()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if verbose:
        print(f"optbook {__version__} ready; computing on {device.type}")
    return device


def progress(iterable=None, desc: str = "", total: int | None = None, **kwargs):
    """A text progress bar for training loops that prints the same thing on every run.

    It redraws at every tenth of the way and shows no timings, so a notebook's committed output is
    reproducible (strict nbval compares it) while a live reader still sees the loop advance.
    """
    from tqdm.std import tqdm

    tqdm.monitor_interval = 0  # the monitor thread would redraw on a timer
    total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    return tqdm(iterable, desc=desc, total=total, file=sys.stdout, ascii=" #", ncols=70, mininterval=0,
                maxinterval=float("inf"), miniters=max(1, (total or 10) // 10),
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}", **kwargs)

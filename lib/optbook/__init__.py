"""optbook: the library of the interactive textbook on adaptive learning-rate optimizers.

Modules, from the bottom up: ``transforms`` (the update rules as composable pieces), ``optim``
(torch.optim-compatible optimizers built from them), ``landscapes`` (the book's terrain), ``run``
(batched walks on a landscape), ``precision`` (float16/bfloat16 facts), then the presentation layer.
"""

from . import landscapes, optim, precision, transforms
from .run import Trajectory, grid, run

__version__ = "0.1.0"
__all__ = ["Trajectory", "grid", "landscapes", "optim", "precision", "run", "transforms"]

"""The book's progress bar: the same text on every run, so strict nbval can compare training cells."""

from __future__ import annotations

import sys

__all__ = ["progress"]


def progress(iterable=None, desc: str = "", total: int | None = None, **kwargs):
    """A text progress bar for training loops that prints the same thing on every run.

    It redraws at every tenth of the way and shows no timings, so a notebook's committed output is
    reproducible (strict nbval compares it) while a live reader still sees the loop advance.
    """
    from tqdm.std import tqdm

    tqdm.monitor_interval = 0  # the monitor thread would redraw on a timer
    total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        file=sys.stdout,
        ascii=" #",
        ncols=70,
        mininterval=0,
        maxinterval=float("inf"),
        miniters=max(1, (total or 10) // 10),
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}",
        **kwargs,
    )

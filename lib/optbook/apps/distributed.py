r"""Optimizer state across machines, for real: ZeRO stage 1 and FSDP2 on ``torch.distributed``.

:func:`sharded_runs` starts ``world_size`` processes on this machine (``torch.multiprocessing.spawn``, the
``gloo`` backend on 127.0.0.1, so it runs on a CPU), trains a small MLP for ``steps`` steps with one of the
library's optimizers, and returns each rank's optimizer-state bytes and the final parameters. Two ways to
shard the state:

* ``"zero1"``: ``torch.distributed.optim.ZeroRedundancyOptimizer`` around a ``DistributedDataParallel``
  model. It is ZeRO stage 1 (Rajbhandari et al. 2020, $P_{os}$): every rank keeps the whole model and
  gradient, the optimizer state of each parameter tensor lives on one rank only, and after its step each
  rank broadcasts the tensors it owns. Whole tensors are dealt out, largest first, to the least-loaded rank.
* ``"fsdp2"``: ``torch.distributed.fsdp.fully_shard`` (FSDP2, close to ZeRO stage 3): every parameter is a
  ``DTensor`` split on dimension 0, so each rank holds a slice of each parameter, gradient and state.

:func:`single_run` is the reference: the same model, data and optimizer in one process on the full batch.
Each rank trains on its slice of every batch; the gradients are averaged across ranks, so the parameters
after ``steps`` steps equal the single-process ones up to float32 rounding of the reduction.
"""

from __future__ import annotations

import os
import socket
import tempfile

import numpy as np
import torch

from ..core import optim, validate

__all__ = ["MODES", "single_run", "sharded_runs", "state_bytes", "launch_commands"]

MODES = ("zero1", "fsdp2")
BATCH, N_IN, HIDDEN, N_OUT = 8, 16, 64, 4


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(N_IN, HIDDEN),
        torch.nn.Tanh(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.Tanh(),
        torch.nn.Linear(HIDDEN, N_OUT),
    )


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(BATCH, N_IN, generator=g), torch.randn(BATCH, N_OUT, generator=g)


def _optimizer_class(name: str):
    cls = getattr(optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"optimizer must name a class of optbook.core.optim (Adam, AdamW, SGD, ...), got {name!r}")
    return cls


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the state tensors in ``optimizer.state`` on this rank (a DTensor counts its local shard).
    0-d tensors (step counters, a few bytes per parameter tensor) are left out."""
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                local = value.to_local() if hasattr(value, "to_local") else value
                total += local.numel() * local.element_size()
    return total


def _params(model) -> list[np.ndarray]:
    out = []
    for p in model.parameters():
        p = p.full_tensor() if hasattr(p, "full_tensor") else p
        out.append(p.detach().numpy().copy())
    return out


def single_run(optimizer: str = "Adam", steps: int = 10, lr: float = 1e-2) -> dict:
    """One process, the full batch: ``{"params": [...], "state_bytes": int}``."""
    validate.integer_at_least("steps", steps, 1)
    model = _model()
    opt = _optimizer_class(optimizer)(model.parameters(), lr=lr)
    for step in range(steps):
        x, y = _batch(step)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return {"params": _params(model), "state_bytes": state_bytes(opt)}


def _train(mode: str, group, rank: int, world: int, cls, steps: int, lr: float) -> dict:
    """One run on the ranks of ``group`` (``rank`` and ``world`` within it)."""
    model = _model()
    if mode == "zero1":
        from torch.distributed.optim import ZeroRedundancyOptimizer
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, process_group=group)
        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=cls, process_group=group, lr=lr)
        local_opt = opt.optim  # the rank's own optimizer, over the tensors it owns
    else:
        from torch.distributed.device_mesh import DeviceMesh
        from torch.distributed.fsdp import fully_shard

        fully_shard(model, mesh=DeviceMesh.from_group(group, "cpu"))
        opt = local_opt = cls(model.parameters(), lr=lr)
    share = BATCH // world
    for step in range(steps):
        x, y = _batch(step)
        x, y = x[rank * share : (rank + 1) * share], y[rank * share : (rank + 1) * share]
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()  # DDP and FSDP average the gradients over ranks
        opt.step()
    owned = sum(len(s) > 0 for s in local_opt.state.values())
    return {"state_bytes": state_bytes(local_opt), "state_tensors": owned, "params": _params(model)}


def _worker(rank: int, world: int, port: int, runs, optimizer: str, steps: int, lr: float, out_dir: str):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cls = _optimizer_class(optimizer)
        results = {}
        for mode, size in runs:
            group = dist.new_group(list(range(size)))  # every rank takes part in creating every group
            if rank < size:
                results[(mode, size)] = _train(mode, group, rank, size, cls, steps, lr)
            dist.barrier()
        # numpy through a file: tensors through a multiprocessing queue die with the worker's shared memory
        np.save(os.path.join(out_dir, f"rank{rank}.npy"), np.array(results, dtype=object), allow_pickle=True)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sharded_runs(
    runs=(("zero1", 1), ("zero1", 2), ("fsdp2", 1), ("fsdp2", 2)), optimizer: str = "Adam", steps: int = 10, lr=1e-2
) -> dict:
    """Train once per ``(mode, world_size)`` in ``runs``, with the state sharded by ``mode`` (``"zero1"`` or
    ``"fsdp2"``) over the first ``world_size`` of ``max(world_size)`` processes, all started once.

    Returns ``{(mode, world_size): [one dict per rank]}``, each with ``state_bytes`` (its optimizer state),
    ``state_tensors`` (how many parameter tensors it keeps state for) and ``params`` (the full parameters
    after ``steps`` steps, as numpy arrays).
    """
    validate.integer_at_least("steps", steps, 1)
    runs = tuple(runs)
    if not runs:
        raise ValueError("runs must name at least one (mode, world_size) pair, got none")
    for mode, size in runs:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        validate.integer_at_least("world_size", size, 1, BATCH)
        if BATCH % size:
            raise ValueError(f"world_size must divide the batch of {BATCH}, got {size}")
    _optimizer_class(optimizer)
    world = max(size for _, size in runs)
    with tempfile.TemporaryDirectory() as out_dir:
        torch.multiprocessing.spawn(
            _worker, args=(world, _free_port(), runs, optimizer, steps, lr, out_dir), nprocs=world
        )
        per_rank = [np.load(os.path.join(out_dir, f"rank{r}.npy"), allow_pickle=True).item() for r in range(world)]
    return {run: [res[run] for res in per_rank if run in res] for run in runs}


def launch_commands(script: str = "train.py", gpus: int = 8) -> list[str]:
    """The commands that run a ``torch.distributed`` script on one multi-GPU node and on two nodes."""
    validate.integer_at_least("gpus", gpus, 1)
    return [
        f"torchrun --standalone --nproc_per_node={gpus} {script}",
        f"torchrun --nnodes=2 --node_rank=0 --nproc_per_node={gpus} --rdzv_backend=c10d "
        f"--rdzv_endpoint=HOST0:29500 {script}   # and node_rank=1 on the second machine",
    ]

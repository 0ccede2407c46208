r"""The federated page's experiment on Flower (``flwr`` 1.42): the library's server optimizer inside a
Flower strategy, the clients as a Flower ``ClientApp``.

Flower splits a federated system into a ``ServerApp`` (a *strategy* that configures each round and
aggregates the replies) and a ``ClientApp`` (what a device does with a message). This module gives

* :func:`client_app`: a ``ClientApp`` whose ``train`` handler runs :func:`optbook.apps.federated.client_update`
  on the client's own shard and replies with its model and its number of examples, and whose ``query``
  handler tells the server which shard (``partition-id``) it holds;
* :class:`LibraryStrategy`: a subclass of Flower's ``FedAvg`` strategy that picks the clients and their
  mini-batch seeds exactly as :func:`optbook.apps.federated.simulate` does, averages their models with
  Flower's own ``aggregate_arrayrecords`` (weighted by ``num-examples``, or uniformly), and steps the
  library's server chain on $-\Delta_t$;
* :class:`LocalGrid`: a Flower ``Grid`` that delivers each message to the ``ClientApp`` in this process,
  one after the other. It is the smallest engine that runs a Flower strategy and ``ClientApp`` unchanged,
  with no Ray; :func:`run_ray_simulation` runs the same apps on Flower's Simulation Runtime (Ray).

Importing this module needs ``flwr``; the rest of optbook does not.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords
from flwr.supercore.task_identity import TaskIdentity

from ..core import transforms as T
from ..core import validate
from . import federated as F

__all__ = ["client_app", "LibraryStrategy", "LocalGrid", "run_local", "run_ray_simulation", "KEY"]

KEY = "theta"  # the one array of an ArrayRecord: the flat parameter vector of the MLP


def _theta(arrays: ArrayRecord) -> torch.Tensor:
    return torch.from_numpy(np.array(arrays[KEY].numpy(), dtype=np.float64))


def _record(theta: torch.Tensor) -> ArrayRecord:
    return ArrayRecord({KEY: Array(np.ascontiguousarray(theta.detach().cpu().numpy()))})


def client_app(model: F.MLP, data: F.ClientData, local_steps: int, batch_size: int) -> ClientApp:
    """A ``ClientApp`` for the clients of ``data``: node ``partition-id = i`` holds shard ``i``."""
    app = ClientApp()

    @app.query()
    def query(msg: Message, ctx: Context) -> Message:
        return Message(
            RecordDict({"metrics": MetricRecord({"partition-id": int(ctx.node_config["partition-id"])})}), reply_to=msg
        )

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        i = int(ctx.node_config["partition-id"])
        n = int(data.counts[i])
        config = msg.content["config"]
        theta = _theta(msg.content["arrays"])
        local = F.client_update(
            model,
            theta,
            data.x[i, :n].to(theta.dtype),
            data.y[i, :n],
            float(config["lr"]),
            local_steps,
            batch_size,
            int(config["seed"]),
        )
        metrics = MetricRecord({"num-examples": n, "unit-weight": 1, "partition-id": i})
        return Message(RecordDict({"arrays": _record(local), "metrics": metrics}), reply_to=msg)

    return app


class LibraryStrategy(FedAvg):
    """Flower's ``FedAvg`` strategy with the library's server optimizer and the simulation's client sampling.

    Each round it picks ``clients_per_round`` of the ``n_clients`` shards with ``torch.randperm`` on a
    generator seeded with ``seed`` and draws one mini-batch seed per picked client (the same calls, in the
    same order, as :func:`optbook.apps.federated.simulate`), sends each picked node the model, the client
    learning rate and its seed, averages the replies with Flower's ``aggregate_arrayrecords`` (in the order
    the clients were picked) and applies ``server`` (a chain of :mod:`optbook.core.transforms`) to $-\\Delta_t$.
    """

    def __init__(
        self,
        server: T.Transform,
        n_clients: int,
        clients_per_round: int,
        client_lr: float,
        seed: int,
        weighting: str = "uniform",
    ):
        validate.integer_at_least("n_clients", n_clients, 1)
        validate.integer_at_least("clients_per_round", clients_per_round, 1, n_clients)
        validate.positive("client_lr", client_lr)
        if weighting not in F.WEIGHTINGS:
            raise ValueError(f"weighting must be one of {F.WEIGHTINGS}, got {weighting!r}")
        key = "num-examples" if weighting == "examples" else "unit-weight"
        super().__init__(fraction_evaluate=0.0, min_available_nodes=n_clients, weighted_by_key=key)
        self.server, self.n_clients, self.m, self.client_lr = server, n_clients, clients_per_round, client_lr
        self.generator = torch.Generator().manual_seed(seed)
        self.nodes: dict[int, int] | None = None  # partition-id -> node id
        self.order: list[int] = []
        self.theta: torch.Tensor | None = None
        self.state = None

    def _learn_nodes(self, grid: Grid, wait: float = 120.0) -> dict[int, int]:
        # nodes register with the SuperLink as they start: wait for all of them, as Flower's sampling does
        deadline = time.monotonic() + wait
        while len(ids := list(grid.get_node_ids())) < self.n_clients and time.monotonic() < deadline:
            time.sleep(0.2)
        asks = [Message(RecordDict(), dst_node_id=node, message_type="query") for node in ids]
        replies = grid.send_and_receive(asks)
        nodes = {int(r.content["metrics"]["partition-id"]): r.metadata.src_node_id for r in replies}
        if sorted(nodes) != list(range(self.n_clients)):
            raise ValueError(
                f"n_clients must match the nodes of the grid ({len(nodes)} answered), got {self.n_clients}"
            )
        return nodes

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        if self.nodes is None:
            self.nodes = self._learn_nodes(grid)
        self.theta = _theta(arrays).unsqueeze(0)  # (1, P): the library's batch of one setting
        if self.state is None:
            self.state = self.server.init(self.theta)
        picked = torch.randperm(self.n_clients, generator=self.generator)[: self.m].tolist()
        seeds = F.client_seeds(self.generator, self.m)
        self.order = picked
        messages = []
        for part, seed in zip(picked, seeds):
            cfg = ConfigRecord({"lr": float(self.client_lr), "seed": int(seed), "server-round": server_round})
            content = RecordDict({"arrays": arrays, "config": cfg})
            messages.append(Message(content, dst_node_id=self.nodes[part], message_type="train"))
        return messages

    def aggregate_train(self, server_round: int, replies):
        valid, _ = self._check_and_log_replies(list(replies), is_train=True)
        if len(valid) != self.m:
            raise RuntimeError(f"round {server_round}: {self.m - len(valid)} of {self.m} clients failed")
        rank = {part: k for k, part in enumerate(self.order)}
        valid.sort(key=lambda r: rank[int(r.content["metrics"]["partition-id"])])
        average = aggregate_arrayrecords([r.content for r in valid], self.weighted_by_key)
        delta = _theta(average).unsqueeze(0) - self.theta
        update, self.state = self.server.update(-delta, self.state, self.theta)
        theta = T.apply_updates(self.theta, update)[0]
        return _record(theta), MetricRecord({"clients": len(valid)})


class LocalGrid(Grid):
    """A Flower ``Grid`` whose ``n_nodes`` nodes are one ``ClientApp`` called in this process.

    Node ``k`` (id ``101 + k``; id 1 is the SuperLink's) has
    ``node_config = {"partition-id": k, "num-partitions": n_nodes}``, as in Flower's simulation. Messages
    are handled one at a time, in the order they are sent.
    """

    def __init__(self, app: ClientApp, n_nodes: int):
        self.app, self.n_nodes = app, validate.integer_at_least("n_nodes", n_nodes, 1)
        self._run = None
        self._replies: dict[str, Message] = {}
        self._count = 0
        # Flower stamps new messages with the identity of the running task, which its runtimes set; this grid
        # is the runtime here, so it plays the SuperLink's part (only where no Flower runtime has set one)
        for field, value in (("_run_id", 0), ("_node_id", SUPERLINK_NODE_ID), ("_task_id", 0)):
            if getattr(TaskIdentity, field) is None:
                setattr(TaskIdentity, field, value)

    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id, ttl=ttl)

    def get_node_ids(self):
        return list(range(101, 101 + self.n_nodes))

    def _context(self, node_id: int) -> Context:
        config = {"partition-id": node_id - 101, "num-partitions": self.n_nodes}
        return Context(run_id=0, node_id=node_id, node_config=config, state=RecordDict(), run_config={})

    def push_messages(self, messages):
        ids = []
        for msg in messages:
            self._count += 1
            msg.metadata.__dict__["_message_id"] = f"local-{self._count}"  # the SuperLink's job in Flower
            reply = self.app(msg, self._context(msg.metadata.dst_node_id))
            self._replies[f"local-{self._count}"] = reply
            ids.append(f"local-{self._count}")
        return ids

    def pull_messages(self, message_ids):
        return [self._replies.pop(i) for i in message_ids]

    def send_and_receive(self, messages, *, timeout=None):
        return self.pull_messages(self.push_messages(list(messages)))


def _evaluate_fn(model: F.MLP, eval_x, eval_y, log: list):
    def evaluate(server_round: int, arrays: ArrayRecord):
        acc = float(model.accuracy(_theta(arrays).unsqueeze(0), eval_x.double(), eval_y)[0])
        log.append(acc)
        return MetricRecord({"accuracy": acc})

    return evaluate


def run_local(
    model: F.MLP,
    data: F.ClientData,
    server: T.Transform,
    theta0: torch.Tensor,
    rounds: int,
    *,
    clients_per_round: int,
    local_steps: int,
    batch_size: int,
    client_lr: float,
    seed: int,
    weighting: str = "uniform",
    eval_x=None,
    eval_y=None,
):
    """Run ``rounds`` rounds of :class:`LibraryStrategy` on a :class:`LocalGrid`; returns
    ``(final theta (P,) float64, accuracies per round)`` (round 0 first; empty without ``eval_x``)."""
    n = len(data.counts)
    strategy = LibraryStrategy(server, n, clients_per_round, client_lr, seed, weighting)
    grid = LocalGrid(client_app(model, data, local_steps, batch_size), n)
    log: list[float] = []
    evaluate = None if eval_x is None else _evaluate_fn(model, eval_x, eval_y, log)
    result = strategy.start(grid=grid, initial_arrays=_record(theta0.double()), num_rounds=rounds, evaluate_fn=evaluate)
    return _theta(result.arrays), log


def run_ray_simulation(
    model: F.MLP,
    data: F.ClientData,
    server: T.Transform,
    theta0: torch.Tensor,
    rounds: int,
    *,
    clients_per_round: int,
    local_steps: int,
    batch_size: int,
    client_lr: float,
    seed: int,
    weighting: str = "uniform",
):
    """The same run on Flower's Simulation Runtime (``flwr.simulation.run_simulation``, Ray backend, one
    CPU per client). Needs ``flwr[simulation]``; returns the final theta ``(P,)``."""
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    n = len(data.counts)
    out = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = LibraryStrategy(server, n, clients_per_round, client_lr, seed, weighting)
        out["result"] = strategy.start(grid=grid, initial_arrays=_record(theta0.double()), num_rounds=rounds)

    run_simulation(
        server_app=server_app,
        client_app=client_app(model, data, local_steps, batch_size),
        num_supernodes=n,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    if "result" not in out:
        raise RuntimeError("the Flower simulation ended without a result (see its log above)")
    return _theta(out["result"].arrays)

"""The library's server optimizers against Flower's strategies, and the federated page's experiment on Flower.

Flower's strategies run unchanged (their own ``start`` loop, messages and aggregation) on
``optbook.apps.flower.LocalGrid``, which calls a ``ClientApp`` in this process; the last test runs the same
apps on Flower's Simulation Runtime (Ray) and is marked slow.
"""

import numpy as np
import pytest
import torch

flwr = pytest.importorskip("flwr")

from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import strategy as S  # noqa: E402

from optbook.apps import federated as F  # noqa: E402
from optbook.apps import flower as FL  # noqa: E402

P, N_CLIENTS, ROUNDS = 7, 4, 6
SIZES = [3, 10, 5, 8]  # examples per client: Flower weights the average by them


def _change(server_round: int, client: int) -> np.ndarray:
    """The change client ``client`` reports in round ``server_round``: fixed random numbers."""
    g = np.random.default_rng(1000 * server_round + client)
    return g.normal(0.0, 0.1, P) * (1 + client)


def _fixed_changes_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg, ctx):
        i = int(ctx.node_config["partition-id"])
        r = int(msg.content["config"]["server-round"])
        x = msg.content["arrays"][FL.KEY].numpy()
        out = ArrayRecord({FL.KEY: flwr.app.Array(x + _change(r, i))})
        return Message(RecordDict({"arrays": out, "metrics": MetricRecord({"num-examples": SIZES[i]})}), reply_to=msg)

    return app


X0 = np.linspace(-1.0, 1.0, P)


def _flower(strategy) -> np.ndarray:
    grid = FL.LocalGrid(_fixed_changes_app(), N_CLIENTS)
    result = strategy.start(
        grid=grid, initial_arrays=ArrayRecord({FL.KEY: flwr.app.Array(X0.copy())}), num_rounds=ROUNDS
    )
    return result.arrays[FL.KEY].numpy()


def _library(server) -> np.ndarray:
    x = torch.tensor(X0).unsqueeze(0)
    state = server.init(x)
    w = torch.tensor(SIZES, dtype=torch.float64) / sum(SIZES)
    for r in range(1, ROUNDS + 1):
        delta = sum(w[i] * torch.tensor(_change(r, i)) for i in range(N_CLIENTS))
        u, state = server.update(-delta.unsqueeze(0), state, x)
        x = x + u
    return x[0].numpy()


COMMON = dict(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=N_CLIENTS)


@pytest.mark.parametrize(
    "name, flower_strategy",
    [
        ("FedAdagrad", lambda: S.FedAdagrad(eta=0.3, tau=1e-2, **COMMON)),
        ("FedAdam", lambda: S.FedAdam(eta=0.3, beta_1=0.9, beta_2=0.99, tau=1e-2, **COMMON)),
        ("FedYogi", lambda: S.FedYogi(eta=0.3, beta_1=0.9, beta_2=0.99, tau=1e-2, **COMMON)),
        ("FedAvgM", lambda: S.FedAvgM(server_learning_rate=0.3, server_momentum=0.9, **COMMON)),
        ("FedAvg", lambda: S.FedAvg(**COMMON)),
    ],
)
def test_library_server_equals_flowers_strategy_on_the_same_client_updates(name, flower_strategy):
    ours = _library(F.server_optimizer(name, lr=1.0 if name == "FedAvg" else 0.3, tau=1e-2, convention="flower"))
    theirs = _flower(flower_strategy())
    assert np.abs(theirs - X0).max() > 0.05  # the server moved
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["FedAdagrad", "FedAdam", "FedYogi"])
def test_where_flower_differs_from_algorithm_2(name):
    """Algorithm 2 starts v at tau^2 and steps with a constant eta; Flower starts v at 0 (and its FedAdam
    rescales eta each round). With tau small against the changes the two nearly agree; with tau of the
    changes' size they do not."""
    paper = _library(F.server_optimizer(name, lr=0.3, tau=1e-2))
    flower = _library(F.server_optimizer(name, lr=0.3, tau=1e-2, convention="flower"))
    assert np.abs(paper - flower).max() > 1e-4
    cls = {"FedAdagrad": S.FedAdagrad, "FedAdam": S.FedAdam, "FedYogi": S.FedYogi}[name]
    kwargs = {} if name == "FedAdagrad" else dict(beta_1=0.9, beta_2=0.99)
    theirs = _flower(cls(eta=0.3, tau=1e-2, **kwargs, **COMMON))
    assert np.abs(paper - theirs).max() > 1e-4


def _digits_like(seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 6, generator=g, dtype=torch.float64)
    y = torch.arange(160) % 4
    x = centers[y] + 0.8 * torch.randn(160, 6, generator=g, dtype=torch.float64)
    return x, y


PAGE = dict(clients_per_round=3, local_steps=3, batch_size=8, client_lr=0.2, seed=5)


def _page_setup():
    x, y = _digits_like()
    model = F.MLP(6, 5, 4)
    theta0 = model.init(torch.Generator().manual_seed(1), dtype=torch.float64)
    data = F.pad_clients(x, y, F.dirichlet_split(y, 6, 0.3, seed=0))
    return x, y, model, theta0, data


@pytest.mark.parametrize("name", ["FedAvg", "FedAvgM", "FedAdagrad", "FedAdam", "FedYogi"])
@pytest.mark.parametrize("weighting", ["uniform", "examples"])
def test_the_page_experiment_on_flower_equals_the_in_process_simulation(name, weighting):
    x, y, model, theta0, data = _page_setup()
    server = F.server_optimizer(name, lr=1.0 if name == "FedAvg" else 0.1, tau=1e-2)
    kw = {k: v for k, v in PAGE.items() if k != "seed"}
    res = F.simulate(
        model,
        data,
        server,
        theta0,
        6,
        weighting=weighting,
        generator=torch.Generator().manual_seed(PAGE["seed"]),
        eval_x=x,
        eval_y=y,
        **kw,
    )
    theta, acc = FL.run_local(model, data, server, theta0, 6, weighting=weighting, eval_x=x, eval_y=y, **PAGE)
    assert (res.theta[0] - theta0).abs().max() > 1e-2
    torch.testing.assert_close(theta, res.theta[0], rtol=0, atol=1e-12)
    assert acc == pytest.approx(res.accuracy[:, 0].tolist(), abs=1e-12)


def test_library_strategy_rejects_bad_input():
    with pytest.raises(ValueError, match="clients_per_round"):
        FL.LibraryStrategy(F.server_optimizer("FedAvg"), 3, 4, 0.1, 0)
    with pytest.raises(ValueError, match="weighting"):
        FL.LibraryStrategy(F.server_optimizer("FedAvg"), 3, 2, 0.1, 0, weighting="median")


@pytest.mark.slow
def test_the_page_experiment_on_flowers_ray_simulation_equals_the_local_grid():
    pytest.importorskip("ray")
    x, y, model, theta0, data = _page_setup()
    server = F.server_optimizer("FedYogi", lr=0.1, tau=1e-2)
    local, _ = FL.run_local(model, data, server, theta0, 2, **PAGE)
    ray_theta = FL.run_ray_simulation(model, data, server, theta0, 2, **PAGE)
    assert (local - theta0).abs().max() > 1e-3
    torch.testing.assert_close(ray_theta, local, rtol=0, atol=1e-12)

"""The federated simulation: splits, the server pieces, and FedAvg against centralised gradient descent."""

import pytest
import torch

from optbook.apps import federated as F
from optbook.core import transforms as T


def _toy(n=60, d=5, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.arange(n) % classes
    return x, y


@pytest.mark.parametrize("alpha", [0.05, 1.0, 1000.0])
def test_dirichlet_split_partitions_the_data(alpha):
    y = torch.arange(300) % 10
    parts = F.dirichlet_split(y, 12, alpha, seed=3)
    assert len(parts) == 12 and min(len(p) for p in parts) >= 2
    everything = torch.sort(torch.cat(parts)).values
    assert torch.equal(everything, torch.arange(300))  # every example exactly once
    hist = F.label_histogram(y, parts, 10)
    assert hist.shape == (12, 10) and hist.sum() == 300
    assert torch.equal(hist.sum(0), torch.bincount(y))


def test_dirichlet_split_tops_up_tiny_clients():
    y = torch.arange(500) % 10
    parts = F.dirichlet_split(y, 50, 0.01, seed=0, min_size=3)
    assert min(len(p) for p in parts) >= 3
    assert torch.equal(torch.sort(torch.cat(parts)).values, torch.arange(500))


def test_dirichlet_split_is_reproducible_and_alpha_sets_the_skew():
    y = torch.arange(1000) % 10
    assert all(
        torch.equal(a, b) for a, b in zip(F.dirichlet_split(y, 20, 0.1, seed=1), F.dirichlet_split(y, 20, 0.1, seed=1))
    )

    def classes_per_client(alpha):
        hist = F.label_histogram(y, F.dirichlet_split(y, 20, alpha, seed=0), 10)
        return (hist > 0).sum(1).double().mean().item()

    assert classes_per_client(0.1) < 5 < classes_per_client(100.0) == 10


def test_dirichlet_split_rejects_bad_input():
    y = torch.arange(100) % 10
    with pytest.raises(ValueError, match="alpha"):
        F.dirichlet_split(y, 5, 0.0)
    with pytest.raises(ValueError, match="n_clients"):
        F.dirichlet_split(y, 0, 1.0)


def test_scale_by_yogi_matches_its_equation_on_hand_values():
    b1, b2, eps = 0.5, 0.75, 0.1
    piece = T.scale_by_yogi(b1, b2, eps)
    p = torch.zeros(2, dtype=torch.float64)
    state = piece.init(p)
    g1 = torch.tensor([2.0, -1.0], dtype=torch.float64)
    u1, state = piece.update(g1, state, p)
    # m1 = 0.5 g1 = [1, -0.5]; v1 = 0 - 0.25 * g1^2 * sign(0 - g1^2) = 0.25 g1^2 = [1, 0.25]
    assert torch.allclose(state["exp_avg_sq"], torch.tensor([1.0, 0.25], dtype=torch.float64))
    assert torch.allclose(u1, torch.tensor([1 / 1.1, -0.5 / 0.6], dtype=torch.float64))
    g2 = torch.tensor([0.0, 3.0], dtype=torch.float64)
    u2, state = piece.update(g2, state, p)
    # coordinate 0: g^2 = 0, v stays 1 (Adam would shrink it to 0.75); coordinate 1: v = 0.25 + 0.25 * 9 = 2.5
    assert torch.allclose(state["exp_avg_sq"], torch.tensor([1.0, 2.5], dtype=torch.float64))
    m2 = torch.tensor([0.5, 1.25], dtype=torch.float64)
    assert torch.allclose(u2, m2 / (state["exp_avg_sq"].sqrt() + eps))


def test_fedadam_server_matches_algorithm_2():
    lr, tau, b1, b2 = 0.1, 1e-3, 0.9, 0.99
    server = F.server_optimizer("FedAdam", lr=lr, tau=tau, b1=b1, b2=b2)
    x = torch.zeros(3, dtype=torch.float64)
    state = server.init(x)
    m = torch.zeros(3, dtype=torch.float64)
    v = torch.full((3,), tau**2, dtype=torch.float64)  # Algorithm 2: v starts at tau^2
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        delta = torch.randn(3, generator=g, dtype=torch.float64)
        u, state = server.update(-delta, state, x)
        m = b1 * m + (1 - b1) * delta
        v = b2 * v + (1 - b2) * delta**2
        assert torch.allclose(u, lr * m / (v.sqrt() + tau))
        x = x + u


def test_fedadagrad_server_accumulates_squares():
    server = F.server_optimizer("FedAdagrad", lr=0.5, tau=1e-2)
    x = torch.zeros(2, dtype=torch.float64)
    state = server.init(x)
    deltas = [torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([3.0, 0.5], dtype=torch.float64)]
    total = torch.full((2,), 1e-4, dtype=torch.float64)  # tau^2
    for delta in deltas:
        u, state = server.update(-delta, state, x)
        total = total + delta**2
        assert torch.allclose(u, 0.5 * delta / (total.sqrt() + 1e-2))


def test_server_optimizer_rejects_unknown_names():
    with pytest.raises(ValueError, match="FedYogi"):
        F.server_optimizer("FedLion")
    with pytest.raises(ValueError, match="convention"):
        F.server_optimizer("FedAdam", convention="keras")


@pytest.mark.parametrize("name", ["FedAdagrad", "FedAdam", "FedYogi"])
def test_second_moment_starts_at_tau_squared_in_the_paper_and_at_zero_in_flower(name):
    x = torch.zeros(2, 3, dtype=torch.float64)
    taus = torch.tensor([[1e-3], [1e-1]], dtype=torch.float64)
    paper = F.second_moment(F.server_optimizer(name, tau=taus).init(x))
    assert torch.equal(paper, (taus**2).expand(2, 3))
    flower = F.second_moment(F.server_optimizer(name, tau=1e-3, convention="flower").init(x))
    assert torch.equal(flower, torch.zeros(2, 3, dtype=torch.float64))


def test_fedavgm_is_heavy_ball_on_the_averaged_change():
    lr, mu = 0.7, 0.9
    server = F.server_optimizer("FedAvgM", lr=lr, momentum=mu)
    x = torch.zeros(3, dtype=torch.float64)
    state = server.init(x)
    g = torch.Generator().manual_seed(1)
    b = None
    for _ in range(4):
        delta = torch.randn(3, generator=g, dtype=torch.float64)
        u, state = server.update(-delta, state, x)
        b = delta if b is None else mu * b + delta  # Hsu et al.: v <- mu v + Delta w; w <- w - lr v
        assert torch.allclose(u, lr * b)


def test_flower_fedadam_step_size_is_one_round_ahead():
    eta = F.flower_fedadam_lr(0.1, 0.9, 0.99)
    assert eta(1) == pytest.approx(0.1 * (1 - 0.99**2) ** 0.5 / (1 - 0.9**2))
    assert eta(1) / 0.1 == pytest.approx(0.7425, abs=1e-4)  # Kingma and Ba's factor at step 1 would be 1


def test_client_update_is_the_batched_simulation_for_one_client():
    x, y = _toy(n=50)
    model = F.MLP(5, 4, 3)
    theta0 = model.init(torch.Generator().manual_seed(3), dtype=torch.float64)
    data = F.pad_clients(x, y, [torch.arange(50)])
    gen = torch.Generator().manual_seed(7)
    res = F.simulate(
        model,
        data,
        F.server_optimizer("FedAvg"),
        theta0,
        1,
        clients_per_round=1,
        local_steps=3,
        batch_size=4,
        client_lr=0.3,
        generator=gen,
    )
    gen = torch.Generator().manual_seed(7)
    torch.randperm(1, generator=gen)
    (seed,) = F.client_seeds(gen, 1)
    local = F.client_update(model, theta0, x, y, 0.3, 3, 4, seed)
    assert torch.allclose(res.theta[0], local, atol=1e-13)


def test_client_learning_rate_grid_runs_each_rate():
    x, y = _toy(n=80)
    model = F.MLP(5, 3, 3)
    theta0 = model.init(torch.Generator().manual_seed(4), dtype=torch.float64)
    data = F.pad_clients(x, y, F.dirichlet_split(y, 4, 0.5, seed=0))
    kw = dict(clients_per_round=2, local_steps=2, batch_size=4)
    lrs = torch.tensor([[0.05], [0.2]], dtype=torch.float64)
    both = F.simulate(
        model,
        data,
        F.server_optimizer("FedAvg"),
        theta0,
        3,
        n_settings=2,
        client_lr=lrs,
        generator=torch.Generator().manual_seed(5),
        **kw,
    )
    one = F.simulate(
        model,
        data,
        F.server_optimizer("FedAvg"),
        theta0,
        3,
        client_lr=0.2,
        generator=torch.Generator().manual_seed(5),
        **kw,
    )
    assert torch.allclose(both.theta[1], one.theta[0], atol=1e-12)
    assert not torch.allclose(both.theta[0], one.theta[0])
    with pytest.raises(ValueError, match="client_lr"):
        F.simulate(model, data, F.server_optimizer("FedAvg"), theta0, 1, n_settings=2, client_lr=lrs[:, 0], **kw)


def test_one_client_one_full_batch_step_fedavg_is_gradient_descent():
    x, y = _toy()
    model = F.MLP(5, 4, 3)
    theta0 = model.init(torch.Generator().manual_seed(1), dtype=torch.float64)
    parts = [torch.arange(len(y))]
    data = F.pad_clients(x, y, parts)
    # batch_size = n with replacement is not full batch; use a batch of every row by giving n rows of 1 example
    lr, rounds = 0.3, 4
    res = F.simulate(
        model,
        data,
        F.server_optimizer("FedAvg", lr=1.0),
        theta0,
        rounds,
        clients_per_round=1,
        local_steps=1,
        batch_size=len(y),
        client_lr=lr,
        generator=torch.Generator().manual_seed(0),
        full_batch=True,
    )
    theta = theta0.clone().requires_grad_(True)
    for _ in range(rounds):
        loss = torch.nn.functional.cross_entropy(model.logits(theta, x), y)
        (grad,) = torch.autograd.grad(loss, theta)
        theta = (theta - lr * grad).detach().requires_grad_(True)
    assert torch.allclose(res.theta[0], theta.detach(), atol=1e-12)


def test_fedavg_is_the_weighted_average_of_client_models():
    x, y = _toy(n=40)
    model = F.MLP(5, 0, 3)
    theta0 = model.init(torch.Generator().manual_seed(2), dtype=torch.float64)
    parts = [torch.arange(0, 10), torch.arange(10, 40)]
    data = F.pad_clients(x, y, parts)
    res = F.simulate(
        model,
        data,
        F.server_optimizer("FedAvg"),
        theta0,
        1,
        clients_per_round=2,
        local_steps=3,
        client_lr=0.2,
        weighting="examples",
        generator=torch.Generator().manual_seed(0),
        full_batch=True,
    )
    locals_ = []
    for p in parts:
        theta = theta0.clone()
        for _ in range(3):
            theta.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model.logits(theta, x[p]), y[p])
            (grad,) = torch.autograd.grad(loss, theta)
            theta = (theta - 0.2 * grad).detach()
        locals_.append(theta)
    expected = 0.25 * locals_[0] + 0.75 * locals_[1]
    assert torch.allclose(res.theta[0], expected, atol=1e-12)


def test_side_by_side_runs_each_chain_on_its_rows():
    a, b = T.chain(T.scale_by_learning_rate(1.0)), F.server_optimizer("FedYogi", lr=0.1)
    both = T.side_by_side((a, 2), (b, 1))
    p = torch.zeros(3, 4, dtype=torch.float64)
    g = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u, _ = both.update(g, both.init(p), p)
    assert torch.allclose(u[:2], -g[:2])
    ub, _ = b.update(g[2:], b.init(p[2:]), p[2:])
    assert torch.allclose(u[2:], ub)
    with pytest.raises(ValueError, match="rows"):
        both.update(g[:2], both.init(p), p[:2])


def test_settings_are_independent_in_a_batched_simulation():
    x, y = _toy(n=80)
    model = F.MLP(5, 3, 3)
    theta0 = model.init(torch.Generator().manual_seed(4), dtype=torch.float64)
    data = F.pad_clients(x, y, F.dirichlet_split(y, 4, 0.5, seed=0))
    lrs = torch.tensor([[0.01], [0.1]], dtype=torch.float64)
    kw = dict(clients_per_round=2, local_steps=2, batch_size=4, client_lr=0.1)
    both = F.simulate(
        model,
        data,
        F.server_optimizer("FedAdam", lr=lrs),
        theta0,
        3,
        n_settings=2,
        generator=torch.Generator().manual_seed(5),
        **kw,
    )
    one = F.simulate(
        model, data, F.server_optimizer("FedAdam", lr=0.1), theta0, 3, generator=torch.Generator().manual_seed(5), **kw
    )
    assert torch.allclose(both.theta[1], one.theta[0], atol=1e-12)
    assert torch.allclose(both.accuracy[:, 1], one.accuracy[:, 0])


def test_simulate_rejects_bad_input():
    x, y = _toy()
    model = F.MLP(5, 0, 3)
    data = F.pad_clients(x, y, F.dirichlet_split(y, 3, 1.0))
    with pytest.raises(ValueError, match="clients_per_round"):
        F.simulate(model, data, F.server_optimizer("FedAvg"), model.init(dtype=torch.float64), 1, clients_per_round=4)
    with pytest.raises(ValueError, match="client_lr"):
        F.simulate(
            model,
            data,
            F.server_optimizer("FedAvg"),
            model.init(dtype=torch.float64),
            1,
            clients_per_round=2,
            client_lr=0.0,
        )
    with pytest.raises(ValueError, match="weighting"):
        F.simulate(
            model,
            data,
            F.server_optimizer("FedAvg"),
            model.init(dtype=torch.float64),
            1,
            clients_per_round=2,
            weighting="median",
        )

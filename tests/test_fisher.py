"""The Fisher helpers against closed forms and against plain autograd loops."""

import pytest
import torch

from optbook.lab import fisher as FI


@pytest.fixture
def problem():
    gen = torch.Generator().manual_seed(3)
    X, y = FI.logistic_data(200, [2.0, 1.0, 0.3], [1.0, -2.0, 0.5], gen)
    theta = torch.tensor([0.4, -1.1, 2.0], dtype=torch.float64)
    return theta, X, y


def autograd_scores(theta, X, y):
    rows = []
    for x_i, y_i in zip(X, y):
        t = theta.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(FI.logistic_log_prob(t, x_i, y_i), t)
        rows.append(g)
    return torch.stack(rows)


def test_per_example_grads_match_autograd_loop(problem):
    theta, X, y = problem
    torch.testing.assert_close(FI.per_example_grads(FI.logistic_log_prob, theta, X, y), autograd_scores(theta, X, y))
    # and the closed form of the logistic score, (y - p) x
    p = torch.sigmoid(X @ theta)
    torch.testing.assert_close(FI.per_example_grads(FI.logistic_log_prob, theta, X, y), (y - p)[:, None] * X)


def test_empirical_fisher_matches_autograd_loop(problem):
    theta, X, y = problem
    s = autograd_scores(theta, X, y)
    loop = sum(torch.outer(r, r) for r in s) / len(s)
    torch.testing.assert_close(FI.empirical_fisher(FI.logistic_log_prob, theta, X, y), loop)


def test_fisher_matches_closed_form_and_hessian(problem):
    theta, X, y = problem
    exact = FI.fisher(FI.logistic_log_prob, theta, X)
    torch.testing.assert_close(exact, FI.logistic_fisher(theta, X))
    hessian = torch.autograd.functional.hessian(lambda t: FI.logistic_nll(t, X, y), theta)
    torch.testing.assert_close(exact, hessian)


def test_fisher_monte_carlo_converges(problem):
    theta, X, _ = problem
    gen = torch.Generator().manual_seed(0)
    mc = FI.fisher(FI.logistic_log_prob, theta, X, samples=400, generator=gen)
    exact = FI.logistic_fisher(theta, X)
    assert (mc - exact).abs().max() / exact.abs().max() < 0.05


def test_empirical_fisher_differs_from_fisher_when_labels_disagree(problem):
    theta, X, y = problem
    # labels opposite to a confident model: residuals ~ 1, while p(1 - p) ~ 0
    wrong = 1 - (X @ theta > 0).to(X.dtype)
    emp = FI.empirical_fisher(FI.logistic_log_prob, theta, X, wrong)
    exact = FI.logistic_fisher(theta, X)
    assert (emp.diagonal() / exact.diagonal()).min() > 2


def test_logistic_data_is_reproducible_and_flips():
    a = FI.logistic_data(50, [1.0, 1.0], [3.0, 0.0], torch.Generator().manual_seed(1))
    b = FI.logistic_data(50, [1.0, 1.0], [3.0, 0.0], torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    flipped = FI.logistic_data(50, [1.0, 1.0], [3.0, 0.0], torch.Generator().manual_seed(1), flip=1.0)
    torch.testing.assert_close(flipped[1], 1 - a[1])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: FI.logistic_fisher(torch.zeros(3, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64)), "X"),
        (
            lambda: FI.logistic_fisher(torch.zeros(2, 2, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64)),
            "theta",
        ),
        (lambda: FI.logistic_data(0, [1.0], [1.0], torch.Generator()), "n"),
        (lambda: FI.logistic_data(5, [1.0], [1.0], torch.Generator(), flip=1.5), "flip"),
        (
            lambda: FI.fisher(
                FI.logistic_log_prob,
                torch.zeros(2, dtype=torch.float64),
                torch.zeros(4, 2, dtype=torch.float64),
                samples=3,
            ),
            "generator",
        ),
        (
            lambda: FI.fisher(
                FI.logistic_log_prob,
                torch.zeros(2, dtype=torch.float64),
                torch.zeros(4, 2, dtype=torch.float64),
                labels=[1.0],
            ),
            "labels",
        ),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()

"""Preconditioners: Newton in one step, full-matrix AdaGrad's rotation invariance, the matrix helpers."""

import math

import pytest
import torch

from optbook.core import preconditioners as PC
from optbook.core import transforms as T
from optbook.lab import landscapes as L
from optbook.lab import preconditioning as PM
from optbook.lab.run import grid, run


def random_spd(d, seed, spread=100.0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    lam = torch.logspace(0, math.log10(spread), d, dtype=torch.float64)
    return q @ torch.diag(lam) @ q.T, q


@pytest.mark.parametrize("d,seed", [(2, 0), (3, 1), (5, 2), (8, 3)])
def test_newton_reaches_the_minimizer_of_any_quadratic_in_one_step(d, seed):
    h, _ = random_spd(d, seed)
    gen = torch.Generator().manual_seed(10 + seed)
    minimizer = torch.randn(d, generator=gen, dtype=torch.float64)
    bowl = L.Quadratic(h, minimizer=minimizer.tolist())
    starts = 5 * torch.randn(4, d, generator=gen, dtype=torch.float64)  # four hikers at once
    walk = run(PC.newton(h), bowl, x0=starts, steps=1)
    torch.testing.assert_close(walk.final, minimizer.expand(4, d), rtol=0, atol=1e-10)
    assert walk.losses[-1].max() < 1e-18


def test_newton_direction_is_the_solution_of_h_u_equals_g():
    h, _ = random_spd(4, 5)
    g = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    u, _ = PC.scale_by_newton(h).update(g, {}, g)
    torch.testing.assert_close(h @ u, g)


@pytest.mark.parametrize("angle", [0.3, math.pi / 4, 2.0])
def test_full_matrix_adagrad_is_rotation_invariant(angle):
    h = torch.diag(torch.tensor([1.0, 50.0], dtype=torch.float64))
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    x0 = torch.tensor([-2.0, 0.4], dtype=torch.float64)
    plain = run(PC.full_matrix_adagrad(lr=0.3), L.Quadratic(h), x0=x0, steps=60)
    turned = run(PC.full_matrix_adagrad(lr=0.3), L.Quadratic(rot @ h @ rot.T), x0=rot @ x0, steps=60)
    torch.testing.assert_close(turned.params, plain.params @ rot.T, rtol=0, atol=1e-9)
    # the diagonal AdaGrad is not: the same experiment gives a different walk
    diag_plain = run(T.chain(T.scale_by_rss(), T.scale_by_learning_rate(0.3)), L.Quadratic(h), x0=x0, steps=60)
    diag_turned = run(
        T.chain(T.scale_by_rss(), T.scale_by_learning_rate(0.3)), L.Quadratic(rot @ h @ rot.T), x0=rot @ x0, steps=60
    )
    assert (diag_turned.params - diag_plain.params @ rot.T).abs().max() > 1e-2


def test_full_matrix_adagrad_matches_the_formula_and_runs_a_grid():
    gen = torch.Generator().manual_seed(3)
    grads = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    piece = PC.scale_by_full_matrix_rss(eps=1e-3)
    state = piece.init(grads[0])
    total = torch.zeros(3, 3, dtype=torch.float64)
    for g in grads:
        u, state = piece.update(g, state, g)
        total += torch.outer(g, g)
        lam, vec = torch.linalg.eigh(total)
        expected = vec @ torch.diag(1 / (lam.clamp_min(0).sqrt() + 1e-3)) @ vec.T @ g
        torch.testing.assert_close(u, expected)
    torch.testing.assert_close(state["outer_sum"], grads.T @ grads)
    lrs = grid(lr=[0.01, 0.1, 0.5])["lr"]
    batched = run(PC.full_matrix_adagrad(lr=lrs), L.Canyon(30.0, angle=0.7), steps=20)
    one = run(PC.full_matrix_adagrad(lr=0.1), L.Canyon(30.0, angle=0.7), steps=20)
    torch.testing.assert_close(batched.params[:, 1], one.params)


def test_inverse_root_against_matrix_power():
    h, _ = random_spd(4, 7)
    torch.testing.assert_close(PC.inverse_root(h, 2.0) @ PC.inverse_root(h, 2.0) @ h, torch.eye(4, dtype=torch.float64))
    quarter = PC.inverse_root(h, 4.0)
    torch.testing.assert_close(torch.linalg.matrix_power(quarter, 4) @ h, torch.eye(4, dtype=torch.float64))
    # a singular matrix with eps = 0: the null direction gets 0, not inf
    rank1 = torch.outer(torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(PC.inverse_root(rank1, 2.0), rank1)


def test_condition_number_after():
    for angle in [0.0, 0.4, math.pi / 4]:
        canyon = L.Canyon(100.0, angle=angle)
        h = canyon.hessian
        eye = torch.eye(2, dtype=torch.float64)
        assert PM.condition_number_after(h, eye).item() == pytest.approx(100.0)
        assert PM.condition_number_after(h, torch.linalg.inv(h)).item() == pytest.approx(1.0)
    # Jacobi rounds the axis-aligned canyon, and does nothing at 45 degrees (equal diagonal entries)
    assert PM.condition_number_after(
        L.Canyon(100.0).hessian, PM.jacobi(L.Canyon(100.0).hessian)
    ).item() == pytest.approx(1.0)
    turned = L.Canyon(100.0, angle=math.pi / 4).hessian
    assert PM.condition_number_after(turned, PM.jacobi(turned)).item() == pytest.approx(100.0)
    # independent check: cond(P^1/2 H P^1/2) equals the eigenvalue ratio of P H
    h, _ = random_spd(3, 9)
    p, _ = random_spd(3, 11, spread=10.0)
    lam = torch.linalg.eigvals(p @ h).real.sort().values
    assert PM.condition_number_after(h, p).item() == pytest.approx((lam[-1] / lam[0]).item(), rel=1e-9)


def test_diagonal_preconditioner():
    s = torch.tensor([4.0, 0.25], dtype=torch.float64)
    torch.testing.assert_close(PM.diagonal_preconditioner(s), torch.diag(torch.tensor([0.5, 2.0], dtype=torch.float64)))
    with pytest.raises(ValueError, match="second_moment"):
        PM.diagonal_preconditioner(torch.tensor([-1.0]))


def test_shampoo_matches_the_formula():
    gen = torch.Generator().manual_seed(4)
    w = torch.zeros(3, 2, dtype=torch.float64)
    piece = PC.scale_by_shampoo(eps=1e-2)
    state = piece.init(w)
    left, right = 1e-2 * torch.eye(3, dtype=torch.float64), 1e-2 * torch.eye(2, dtype=torch.float64)
    for _ in range(4):
        g = torch.randn(3, 2, generator=gen, dtype=torch.float64)
        u, state = piece.update(g, state, w)
        left, right = left + g @ g.T, right + g.T @ g

        def power(m, p):
            lam, vec = torch.linalg.eigh(m)
            return vec @ torch.diag(lam**p) @ vec.T

        torch.testing.assert_close(u, power(left, -0.25) @ g @ power(right, -0.25))
    with pytest.raises(ValueError, match="matrix parameter"):
        piece.init(torch.zeros(3))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="square"):
        PM.jacobi(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="symmetric"):
        PM.condition_number_after(torch.tensor([[1.0, 2.0], [0.0, 1.0]]), torch.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        PM.condition_number_after(torch.eye(2, dtype=torch.float64), -torch.eye(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive diagonal"):
        PM.jacobi(torch.diag(torch.tensor([1.0, -1.0])))
    with pytest.raises(ValueError, match="eps"):
        PC.scale_by_full_matrix_rss(eps=-1.0)
    with pytest.raises(ValueError, match="positive definite"):
        PC.scale_by_newton(torch.diag(torch.tensor([1.0, 0.0], dtype=torch.float64)))

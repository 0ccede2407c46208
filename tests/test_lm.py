"""optbook.lm: the Markov text's entropy, the causal Transformer, and the Transformer schedule."""

import math

import numpy as np
import pytest
import torch

from optbook.apps import lm
from optbook.core import optim


def test_entropy_rate_matches_the_empirical_entropy():
    text = lm.MarkovText(vocab_size=6, order=2, branching=3, concentration=0.7, seed=1)
    tokens = text.sample(4000, 40, torch.Generator().manual_seed(0))
    # the true model's mean negative log-likelihood estimates the entropy rate (20,000+ samples per 0.01)
    assert -text.log_prob(tokens).mean().item() == pytest.approx(text.entropy_rate(), abs=0.01)
    # and a plug-in estimate from counts of (context, next token) agrees too
    V = 6
    ctx = tokens[:, :-2] * V + tokens[:, 1:-1]
    joint = torch.bincount((ctx * V + tokens[:, 2:]).flatten(), minlength=V**3).double().view(V**2, V)
    p_ctx = joint.sum(1) / joint.sum()
    cond = joint / joint.sum(1, keepdim=True).clamp_min(1)
    plug_in = -(p_ctx[:, None] * torch.where(cond > 0, cond * cond.clamp_min(1e-300).log(), 0.0)).sum().item()
    assert plug_in == pytest.approx(text.entropy_rate(), abs=0.01)


def test_stationary_distribution_is_stationary_and_sampled():
    text = lm.MarkovText(vocab_size=5, order=2, branching=2, seed=3)
    pi = text.stationary
    assert pi.sum().item() == pytest.approx(1.0, abs=1e-12)
    # one step of the context chain maps pi to pi
    n, V = text.n_contexts, text.vocab_size
    step = torch.zeros(n, n, dtype=torch.float64)
    for c in range(n):
        for v in range(V):
            step[c, (c * V) % n + v] += text.table[c, v]
    torch.testing.assert_close(pi @ step, pi, atol=1e-10, rtol=0)
    # the first token of a window is distributed as the stationary marginal
    tokens = text.sample(20000, 4, torch.Generator().manual_seed(0))
    first = torch.bincount(tokens[:, 0], minlength=V).double() / 20000
    torch.testing.assert_close(first, pi.view(V, V).sum(1), atol=0.015, rtol=0)


def test_optimal_loss_is_above_the_rate_and_block_entropies_add_up():
    text = lm.MarkovText(vocab_size=4, order=2, branching=2, seed=0)
    h1 = text.block_entropy(1)
    p1 = text.stationary.view(4, 4).sum(1)
    assert h1 == pytest.approx(-(p1 * p1.log()).sum().item(), rel=1e-12)
    h2 = text.block_entropy(2)
    assert h2 == pytest.approx(
        -(text.stationary[text.stationary > 0] * text.stationary[text.stationary > 0].log()).sum().item(), rel=1e-12
    )
    rate = text.entropy_rate()
    assert text.optimal_loss(10) == pytest.approx((h1 + (h2 - h1) + 8 * rate) / 10, rel=1e-12)
    assert text.optimal_loss(10) > rate
    assert text.next_token_floor(9) == pytest.approx(((h2 - h1) + 8 * rate) / 9, rel=1e-12)


def test_shapes_and_loss_at_initialisation():
    torch.manual_seed(0)
    model = lm.TinyTransformerLM(vocab_size=11, d_model=32, n_heads=4, n_layers=2, context=16)
    tokens = torch.randint(11, (3, 17))
    assert model(tokens[:, :-1]).shape == (3, 16, 11)
    # an untrained model predicts about uniformly: loss near log(V)
    assert model.loss(tokens).item() == pytest.approx(math.log(11), abs=0.5)
    with pytest.raises(ValueError, match="context"):
        model(torch.randint(11, (1, 17)))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_causal_mask_prevents_looking_ahead(norm_first, training):
    torch.manual_seed(0)
    model = lm.TinyTransformerLM(vocab_size=9, d_model=16, n_heads=2, n_layers=2, context=12, norm_first=norm_first)
    model.train(training)
    tokens = torch.randint(9, (2, 12))
    changed = tokens.clone()
    changed[:, 7:] = (tokens[:, 7:] + 1) % 9  # change the future from position 7 on
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7], atol=1e-6, rtol=0)  # the past does not see it
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-3  # but the present does
    # and the gradient of an early output with respect to later embeddings is zero
    emb = model.embed(tokens).detach().requires_grad_(True)
    h = model.blocks(emb + model.position[:12], mask=lm.causal_mask(12), is_causal=True)
    h[:, 3].sum().backward()
    assert emb.grad[:, 4:].abs().max() == 0 and emb.grad[:, :4].abs().max() > 0


def test_transformer_schedule_values():
    assert lm.transformer_lr(4000) == pytest.approx(512**-0.5 * 4000**-0.5, rel=1e-12)
    assert f"{lm.transformer_lr(4000):.3g}" == "0.000699"
    assert f"{lm.transformer_lr(1):.3g}" == "1.75e-07"
    assert f"{lm.transformer_lr(100_000):.3g}" == "0.00014"
    steps = torch.arange(1, 20001)
    values = lm.transformer_lr(steps)
    assert values.argmax().item() + 1 == 4000
    assert values[3999].item() == pytest.approx(lm.transformer_lr(4000), rel=1e-12)
    with pytest.raises(ValueError, match="step"):
        lm.transformer_lr(0)
    with pytest.raises(ValueError, match="warmup"):
        lm.transformer_lambda(warmup=0)


def test_lambda_lr_on_optbook_adam_follows_the_schedule():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = optim.Adam([p], lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lm.transformer_lambda(d_model=64, warmup=10, scale=2.0))
    seen = []
    for _ in range(30):
        seen.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(3)
        opt.step()
        sched.step()
    expected = [2.0 * lm.transformer_lr(t, 64, 10) for t in range(1, 31)]
    assert seen == pytest.approx(expected, rel=1e-12)
    flat = lm.constant_then_decay_lambda(64, 10, 2.0)
    assert [flat(i) for i in range(30)] == pytest.approx(
        [max(e, expected[9]) if t <= 10 else e for t, e in enumerate(expected, start=1)], rel=1e-12
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(vocab_size=1), "vocab_size"),
        (dict(order=0), "order"),
        (dict(branching=40), "branching"),
        (dict(concentration=0.0), "concentration"),
    ],
)
def test_bad_text_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        lm.MarkovText(**kwargs)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="n_heads"):
        lm.TinyTransformerLM(8, d_model=30, n_heads=4)


def test_warmup_cosine_lambda_values():
    f = lm.warmup_cosine_lambda(warmup=10, total=111, final=0.1)
    assert [f(i) for i in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert f(9) == 1.0  # the 10th step is the peak
    assert f(10) == 1.0  # step 11 starts the decay from the peak
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay: the mean of peak and floor
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    values = [f(i) for i in range(9, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # decays monotonically
    assert lm.warmup_cosine_lambda(0, 100)(0) == 1.0
    with pytest.raises(ValueError, match="final"):
        lm.warmup_cosine_lambda(10, 100, final=1.5)
    with pytest.raises(ValueError, match="total"):
        lm.warmup_cosine_lambda(10, 5)


def test_train_lm_records_steps_and_clips():
    text = lm.MarkovText(vocab_size=6, order=1, seed=0)
    torch.manual_seed(0)
    model = lm.TinyTransformerLM(6, d_model=16, n_heads=2, n_layers=1, context=8)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    run = lm.train_lm(model, opt, lm.warmup_cosine_lambda(5, 40), text, 40, 8, clip=1e-3)
    assert run.losses.shape == run.lrs.shape == run.step_sizes.shape == run.clipped.shape == (40,)
    assert run.clipped.all()  # a tiny threshold clips every step
    assert run.lrs[0] == pytest.approx(1e-2 / 5) and run.lrs[4] == pytest.approx(1e-2)
    assert (run.step_sizes > 0).all() and run.held_out < math.log(6) + 0.5
    # the same seeds give the same run
    torch.manual_seed(0)
    model2 = lm.TinyTransformerLM(6, d_model=16, n_heads=2, n_layers=1, context=8)
    run2 = lm.train_lm(
        model2, optim.Adam(model2.parameters(), lr=1e-2), lm.warmup_cosine_lambda(5, 40), text, 40, 8, clip=1e-3
    )
    assert np.array_equal(run.losses, run2.losses)


@pytest.mark.parametrize("norm_first", [False, True])
def test_stacked_loss_is_the_module_loss(norm_first):
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(lm.TinyTransformerLM(7, d_model=16, n_heads=4, n_layers=2, context=9, norm_first=norm_first))
    text = lm.MarkovText(vocab_size=7, order=2, seed=1)
    tokens = torch.stack([text.sample(5, 10, torch.Generator().manual_seed(s)) for s in range(3)])
    stacked = lm.stacked_loss(lm.stack_models(models), tokens, n_heads=4, norm_first=norm_first)
    for m, model in enumerate(models):
        model.eval()
        assert stacked[m].item() == pytest.approx(model.loss(tokens[m]).item(), rel=1e-5)


def test_train_stacked_matches_train_lm_with_optbook_adam():
    text = lm.MarkovText(vocab_size=6, order=1, seed=0)
    steps, schedule = 15, lm.warmup_cosine_lambda(4, 15)
    runs = []
    for seed, (b1, clip) in enumerate([(0.9, None), (0.0, 0.5)]):
        torch.manual_seed(seed)
        model = lm.TinyTransformerLM(6, d_model=16, n_heads=2, n_layers=1, context=8)
        opt = optim.Adam(model.parameters(), lr=3e-3, betas=(b1, 0.98))
        runs.append(lm.train_lm(model, opt, schedule, text, steps, 4, data_seed=100 + seed, clip=clip))
    models = []
    for seed in range(2):
        torch.manual_seed(seed)
        models.append(lm.TinyTransformerLM(6, d_model=16, n_heads=2, n_layers=1, context=8))
    lrs = np.array([[3e-3 * schedule(t)] * 2 for t in range(steps)])
    stacked = lm.train_stacked(
        models,
        text,
        steps,
        4,
        lrs,
        beta1=[0.9, 0.0],
        beta2=0.98,
        clip=[float("inf"), 0.5],
        data_seeds=[100, 101],
        n_heads=2,
    )
    for m, run in enumerate(runs):
        np.testing.assert_allclose(stacked.losses[:, m], run.losses, rtol=1e-4)
        np.testing.assert_allclose(stacked.step_sizes[:, m], run.step_sizes, rtol=1e-3)
        assert stacked.clipped[:, m].tolist() == run.clipped.tolist()
        assert stacked.held_out[m] == pytest.approx(run.held_out, rel=1e-4)
    with pytest.raises(ValueError, match="lrs"):
        lm.train_stacked(models, text, steps, 4, lrs[:3])
    with pytest.raises(ValueError, match="beta1"):
        lm.train_stacked(models, text, steps, 4, lrs, beta1=[0.9, 0.9, 0.9])
    with pytest.raises(ValueError, match="clip"):
        lm.train_stacked(models, text, steps, 4, lrs, clip=0.0)
    with pytest.raises(ValueError, match="data_seeds"):
        lm.train_stacked(models, text, steps, 4, lrs, data_seeds=[1])

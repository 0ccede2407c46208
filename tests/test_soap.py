"""SOAP against a transcription of its authors' code (github.com/nikhilvyas/SOAP, ``soap.py`` at commit
a1e5535), written out below step by step: float64 to 1e-10 over 25+ steps on parameters of rank 0 to 4,
with and without weight decay, with the bases refreshed several times; state_dict round trips; bad input.

The transcription keeps the reference's one dtype choice as a switch: its eigensolvers run in float32
whatever the parameter's dtype (``eig_float32=True``). optbook runs them in the parameter's dtype, so the
float64 comparison switches it off, and the float32 one (where the switch changes nothing) keeps it on."""

import io
import itertools

import pytest
import torch

from optbook.core import optim
from optbook.core import preconditioners as P


class ReferenceSOAP:
    """The reference's ``SOAP.step``, transcribed: same order of operations, same in-place updates."""

    def __init__(
        self, params, lr=3e-3, betas=(0.95, 0.95), shampoo_beta=-1, eps=1e-8, weight_decay=0.01,
        precondition_frequency=10, max_precond_dim=10000, merge_dims=False, precondition_1d=False,
        normalize_grads=False, data_format="channels_first", correct_bias=True, eig_float32=True,
    ):  # fmt: skip
        self.params, self.state = list(params), {}
        self.h = dict(
            lr=lr, betas=betas, shampoo_beta=shampoo_beta, eps=eps, weight_decay=weight_decay,
            freq=precondition_frequency, max_dim=max_precond_dim, merge=merge_dims, pre1d=precondition_1d,
            normalize=normalize_grads, fmt=data_format, correct_bias=correct_bias,
        )  # fmt: skip
        self.eig_float32 = eig_float32

    def merged(self, x):
        if self.h["fmt"] == "channels_last" and x.dim() == 4:
            x = x.permute(0, 3, 1, 2)
        shape, cur = [], 1
        for s in x.shape:
            if cur * s > self.h["max_dim"]:
                if cur > 1:
                    shape.append(cur)
                    cur = s
                else:
                    shape.append(s)
                    cur = 1
            else:
                cur *= s
        if cur > 1 or not shape:
            shape.append(cur)
        return x.reshape(shape)

    def _rotate(self, x, st, contract):
        original = x.shape
        if self.h["merge"]:
            if x.dim() == 4 and self.h["fmt"] == "channels_last":
                permuted = x.permute(0, 3, 1, 2).shape
            x = self.merged(x)
        for q in st["Q"]:
            if len(q) > 0:
                x = torch.tensordot(x, q, dims=[[0], [contract]])
            else:
                x = x.permute(list(range(1, len(x.shape))) + [0])
        if self.h["merge"]:
            if self.h["fmt"] == "channels_last" and len(original) == 4:
                x = x.reshape(permuted).permute(0, 2, 3, 1)
            else:
                x = x.reshape(original)
        return x

    def project(self, x, st):
        return self._rotate(x, st, 0)

    def project_back(self, x, st):
        return self._rotate(x, st, 1)

    def work(self, m):
        return m.float() if self.eig_float32 and m.dtype != torch.float else m

    def eig(self, gg):
        out = []
        for m in gg:
            if len(m) == 0:
                out.append([])
                continue
            w = self.work(m)
            _, q = torch.linalg.eigh(w + 1e-30 * torch.eye(w.shape[0], dtype=w.dtype))
            out.append(torch.flip(q, [1]).to(m.dtype))
        return out

    def qr(self, st):
        v = self.merged(st["exp_avg_sq"]) if self.h["merge"] else st["exp_avg_sq"]
        shape = st["exp_avg_sq"].shape
        if self.h["fmt"] == "channels_last" and len(shape) == 4:
            permuted = st["exp_avg_sq"].permute(0, 3, 1, 2).shape
        out = []
        for k, (m, o) in enumerate(zip(st["GG"], st["Q"])):
            if len(m) == 0:
                out.append([])
                continue
            dtype = m.dtype
            m, o = self.work(m), self.work(o)
            order = torch.argsort(torch.diag(o.T @ m @ o), descending=True)
            v = v.index_select(k, order)
            q, _ = torch.linalg.qr(m @ o[:, order])
            out.append(q.to(dtype))
        if self.h["merge"]:
            v = (
                v.reshape(permuted).permute(0, 2, 3, 1)
                if self.h["fmt"] == "channels_last" and len(shape) == 4
                else v.reshape(shape)
            )
        st["exp_avg_sq"] = v
        return out

    def update_preconditioner(self, g, st):
        if st["Q"] is not None:
            st["exp_avg"] = self.project_back(st["exp_avg"], st)
        beta = self.h["shampoo_beta"] if self.h["shampoo_beta"] >= 0 else self.h["betas"][1]
        if g.dim() == 1:
            if self.h["pre1d"] and g.shape[0] <= self.h["max_dim"]:
                st["GG"][0].lerp_(g.unsqueeze(1) @ g.unsqueeze(0), 1 - beta)
        else:
            gm = self.merged(g) if self.h["merge"] else g
            for k, s in enumerate(gm.shape):
                if s <= self.h["max_dim"]:
                    rest = [*itertools.chain(range(k), range(k + 1, gm.dim()))]
                    st["GG"][k].lerp_(torch.tensordot(gm, gm, dims=[rest, rest]), 1 - beta)
        if st["Q"] is None:
            st["Q"] = self.eig(st["GG"])
        if st["step"] > 0 and st["step"] % self.h["freq"] == 0:
            st["Q"] = self.qr(st)
        if st["step"] > 0:
            st["exp_avg"] = self.project(st["exp_avg"], st)

    @torch.no_grad()
    def step(self):
        h = self.h
        for p in self.params:
            g = p.grad
            st = self.state.setdefault(p, {"step": 0})
            if "exp_avg" not in st:
                st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(g), torch.zeros_like(g)
            if "Q" not in st:
                shape = [g.shape[0]] if g.dim() == 1 else (self.merged(g).shape if h["merge"] else g.shape)
                keep = (lambda s: h["pre1d"] and s <= h["max_dim"]) if g.dim() == 1 else (lambda s: s <= h["max_dim"])
                st["GG"] = [torch.zeros(s, s, dtype=g.dtype) if keep(s) else [] for s in shape]
                st["Q"] = None
                self.update_preconditioner(g, st)
                continue
            gp = self.project(g, st)
            b1, b2 = h["betas"]
            st["step"] += 1
            st["exp_avg"].mul_(b1).add_(gp, alpha=1 - b1)
            st["exp_avg_sq"].mul_(b2).add_(gp.square(), alpha=1 - b2)
            denom = st["exp_avg_sq"].sqrt().add_(h["eps"])
            step_size = h["lr"]
            if h["correct_bias"]:
                step_size = step_size * (1 - b2 ** st["step"]) ** 0.5 / (1 - b1 ** st["step"])
            norm_grad = self.project_back(st["exp_avg"] / denom, st)
            if h["normalize"]:
                norm_grad = norm_grad / (1e-30 + torch.mean(norm_grad**2) ** 0.5)
            p.add_(norm_grad, alpha=-step_size)
            if h["weight_decay"] > 0.0:
                p.add_(p, alpha=-h["lr"] * h["weight_decay"])
            self.update_preconditioner(g, st)


# Every statistic reaches full rank before its first refresh: on a rank-deficient one the reference's own
# basis for the null space is set by rounding (its QR completes it from noise), so two exact
# implementations part there by much more than rounding. (A gradient of shape (1, 3) adds rank 1 per step.)
SHAPES = [(), (7,), (5, 3), (1, 3), (4, 2, 3), (2, 3, 2, 2)]


def make_params(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)) for s in SHAPES]


def loss(params, t):
    """A fixed smooth loss whose gradient changes from step to step (a different quadratic-plus-quartic)."""
    gen = torch.Generator().manual_seed(100 + t)
    total = 0
    for p in params:
        a = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
        total = total + (p * a).sum() + 0.5 * (p**2).sum() + 0.1 * (p**4).sum()
    return total


def walk(make, dtype, steps, reload_at=None):
    params = make_params(dtype)
    opt = make(params)
    for t in range(steps):
        for p in params:
            p.grad = None
        loss(params, t).backward()
        opt.step()
        if reload_at == t:
            buffer = io.BytesIO()
            torch.save(opt.state_dict(), buffer)
            opt = make(params)
            buffer.seek(0)
            opt.load_state_dict(torch.load(buffer, weights_only=False))
    return [p.detach().clone() for p in params], opt


def rel(ours, theirs):
    return max(
        float((a.detach() - b.detach()).abs().max() / b.detach().abs().max().clamp_min(1e-300))
        for a, b in zip(ours, theirs)
    )


CASES = {
    "defaults": {},
    "freq3-wd": {"lr": 0.02, "precondition_frequency": 3, "weight_decay": 0.1},
    "freq8-no-wd-1d": {"lr": 0.01, "precondition_frequency": 8, "weight_decay": 0.0, "precondition_1d": True},
    "merge-maxdim-shampoo-beta": {
        "lr": 0.01, "precondition_frequency": 2, "merge_dims": True, "max_precond_dim": 6, "shampoo_beta": 0.9,
    },
    "maxdim-normalize-no-bias-correction": {
        "lr": 0.003, "precondition_frequency": 5, "max_precond_dim": 4, "normalize_grads": True, "correct_bias": False,
        "betas": (0.9, 0.99), "eps": 1e-6,
    },
    "channels-last-merge": {
        "lr": 0.01, "precondition_frequency": 3, "merge_dims": True, "max_precond_dim": 6,
        "data_format": "channels_last",
    },
}  # fmt: skip
STEPS = 25


@pytest.mark.parametrize("case", list(CASES))
def test_equals_the_reference_float64(case):
    opts = CASES[case]
    ours, opt = walk(lambda ps: optim.SOAP(ps, **opts), torch.float64, STEPS)
    theirs, ref = walk(lambda ps: ReferenceSOAP(ps, eig_float32=False, **opts), torch.float64, STEPS)
    assert rel(ours, theirs) < 1e-10
    before = make_params(torch.float64)
    assert rel(ours, before) > 1e-3  # the walk moved
    for p_ours, p_ref in zip(opt.param_groups[0]["params"], ref.params):  # the state, key by key
        st, rst = opt.state[p_ours], ref.state[p_ref]
        assert float(st["step"]) == rst["step"] == STEPS - 1  # the first call takes no step
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(st[key], rst[key], rtol=1e-9, atol=1e-12)
        for k, (gg, q) in enumerate(zip(rst["GG"], rst["Q"])):
            assert (f"GG{k}" in st) == (len(gg) > 0)
            if len(gg) > 0:
                torch.testing.assert_close(st[f"GG{k}"], gg, rtol=1e-10, atol=1e-13)
                torch.testing.assert_close(st[f"Q{k}"].abs(), q.abs(), rtol=1e-7, atol=1e-9)


def test_first_step_takes_no_step_and_no_decay():
    params = make_params(torch.float64)
    before = [p.detach().clone() for p in params]
    opt = optim.SOAP(params, weight_decay=0.5)
    loss(params, 0).backward()
    opt.step()
    assert rel([p.detach() for p in params], before) == 0


def test_float32_agrees_with_the_reference_float32():
    opts = CASES["freq3-wd"]
    ours, _ = walk(lambda ps: optim.SOAP(ps, **opts), torch.float32, STEPS)
    theirs, _ = walk(lambda ps: ReferenceSOAP(ps, **opts), torch.float32, STEPS)
    exact, _ = walk(lambda ps: ReferenceSOAP(ps, eig_float32=False, **opts), torch.float64, STEPS)
    assert rel(ours, theirs) < 1e-4
    assert rel(ours, exact) <= 3 * rel(theirs, exact) + 1e-6


@pytest.mark.parametrize("case", ["freq3-wd", "merge-maxdim-shampoo-beta"])
def test_state_dict_round_trip(case):
    opts = CASES[case]
    straight, _ = walk(lambda ps: optim.SOAP(ps, **opts), torch.float64, STEPS)
    reloaded, opt = walk(lambda ps: optim.SOAP(ps, **opts), torch.float64, STEPS, reload_at=7)
    assert rel(reloaded, straight) == 0
    state = opt.state_dict()["state"][2]
    assert sorted(state) == ["GG0", "GG1", "Q0", "Q1", "exp_avg", "exp_avg_sq", "step"] or case != "freq3-wd"


def test_rotation_changes_the_step():
    """SOAP is not Adam: with the bases frozen at the identity it would be; on a matrix it is not."""
    opts = {"lr": 0.02, "precondition_frequency": 3, "weight_decay": 0.0, "betas": (0.9, 0.999)}
    ours, _ = walk(lambda ps: optim.SOAP(ps, **opts), torch.float64, STEPS)
    adam, _ = walk(lambda ps: ReferenceAdamAfterOneSkip(ps, 0.02, (0.9, 0.999)), torch.float64, STEPS)
    assert rel(ours[:2], adam[:2]) < 1e-10  # rank 0 and a vector without precondition_1d: Adam exactly
    assert rel(ours[2:3], adam[2:3]) > 1e-3  # a matrix: rotated


class ReferenceAdamAfterOneSkip(ReferenceSOAP):
    """SOAP with no axis rotated (max_precond_dim = 0): Adam, after SOAP's skipped first step."""

    def __init__(self, params, lr, betas):
        super().__init__(params, lr=lr, betas=betas, weight_decay=0.0, max_precond_dim=0, eig_float32=False)


BAD = [
    ({"lr": -1.0}, "lr"),
    ({"betas": (1.0, 0.9)}, "beta1"),
    ({"betas": (0.9, -0.1)}, "beta2"),
    ({"betas": (0.9,)}, "betas"),
    ({"shampoo_beta": 1.0}, "shampoo_beta"),
    ({"eps": -1e-8}, "eps"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"precondition_frequency": 0}, "precondition_frequency"),
    ({"precondition_frequency": 2.5}, "precondition_frequency"),
    ({"max_precond_dim": -1}, "max_precond_dim"),
    ({"data_format": "NHWC"}, "data_format"),
    ({"fast": True}, "fast"),
]


@pytest.mark.parametrize("kwargs, name", BAD, ids=[n + str(i) for i, (_, n) in enumerate(BAD)])
def test_bad_input_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        optim.SOAP([torch.nn.Parameter(torch.zeros(3, 2))], **kwargs)


def test_merge_dims_as_the_reference():
    ref = ReferenceSOAP([], max_precond_dim=6)
    for shape in [(2, 3, 4), (7, 2, 2), (1, 1, 9), (3, 2, 1, 5)]:
        x = torch.zeros(shape)
        assert P.soap_merge_dims(x, 6).shape == ref.merged(x).shape


def test_defaults_are_the_references():
    """The reference's signature (soap.py): lr 3e-3, betas (0.95, 0.95), shampoo_beta -1, eps 1e-8, weight_decay
    0.01, precondition_frequency 10, max_precond_dim 10000, merge_dims, precondition_1d and normalize_grads
    off, data_format channels_first, correct_bias on."""
    reference = dict(
        lr=3e-3, betas=(0.95, 0.95), shampoo_beta=-1, eps=1e-8, weight_decay=0.01, precondition_frequency=10,
        max_precond_dim=10000, merge_dims=False, precondition_1d=False, normalize_grads=False,
        data_format="channels_first", correct_bias=True,
    )  # fmt: skip
    defaults = optim.SOAP([torch.nn.Parameter(torch.zeros(2, 2))]).defaults
    assert {k: defaults[k] for k in reference} == reference

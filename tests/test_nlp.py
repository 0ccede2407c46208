"""optbook.nlp: Zipf corpora, bags of words, co-occurrence counts and GloVe's loss, against direct computations."""

import math

import pytest
import torch

from optbook.apps import nlp


def test_zipf_probabilities_follow_the_law():
    p = nlp.zipf_probabilities(100, 1.2)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    harmonic = sum(k**-1.2 for k in range(1, 101))
    assert p[0].item() == pytest.approx(1 / harmonic, rel=1e-12)
    # p_k / p_1 = k^-s, so the log-log slope is -s
    assert (p[9] / p[0]).item() == pytest.approx(10**-1.2, rel=1e-12)


def test_sampled_frequencies_match_zipf_and_are_seeded():
    tokens, topics = nlp.sample_documents(400, 100, 50, 1.0, generator=3)
    assert topics is None and tokens.shape == (400, 100)
    freq = torch.bincount(tokens.flatten(), minlength=50).double() / tokens.numel()
    p = nlp.zipf_probabilities(50, 1.0)
    # 40,000 draws: each frequency within 5 standard errors of its probability
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / tokens.numel()).sqrt() + 1e-12).all()
    again, _ = nlp.sample_documents(400, 100, 50, 1.0, generator=3)
    assert torch.equal(tokens, again)
    other, _ = nlp.sample_documents(400, 100, 50, 1.0, generator=4)
    assert not torch.equal(tokens, other)


def test_topics_make_topic_words_cooccur():
    tokens, topics = nlp.sample_documents(300, 60, 200, n_topics=5, topic_share=0.8, topic_size=10, generator=0)
    assert topics.shape == (300,) and topics.min() >= 0 and topics.max() < 5
    x = nlp.bag_of_words(tokens, 200, binary=True)
    # documents of the same topic share more words than documents of different topics
    sim = x @ x.T
    same = topics[:, None] == topics[None, :]
    off = ~torch.eye(300, dtype=torch.bool)
    assert sim[same & off].mean() > 1.5 * sim[~same].mean()


def test_bag_of_words_counts_and_presence():
    tokens = torch.tensor([[0, 2, 2, 1], [3, 3, 3, 3]])
    counts = nlp.bag_of_words(tokens, 5)
    assert counts.tolist() == [[1, 1, 2, 0, 0], [0, 0, 0, 4, 0]]
    assert nlp.bag_of_words(tokens, 5, binary=True).tolist() == [[1, 1, 1, 0, 0], [0, 0, 0, 1, 0]]
    assert nlp.bag_of_words(tokens, 5, binary=True, dtype=torch.bool).dtype == torch.bool
    with pytest.raises(ValueError, match="vocab_size"):
        nlp.bag_of_words(tokens, 3)


def test_labelled_corpus_follows_its_teacher():
    c = nlp.labelled_corpus(6000, 30, 300, frequent=[3, 4], rare=[200, 250], weight=3.0, generator=1)
    assert c.x.dtype == torch.bool and c.x.shape == (6000, 300)
    assert set(torch.nonzero(c.w_true).flatten().tolist()) == {3, 4, 200, 250}
    assert c.w_true.abs().max().item() == 3.0
    assert torch.allclose(c.doc_frequency, c.x.double().mean(0))
    # the empirical label rate, among documents with exactly one informative word present, is sigma(+-3)
    score = c.x.double() @ c.w_true
    one = (c.x[:, [3, 4, 200, 250]].sum(1) == 1) & (score > 0)
    assert one.sum() > 300
    assert c.y[one].mean().item() == pytest.approx(1 / (1 + math.exp(-3.0)), abs=0.04)


def test_cooccurrence_against_a_loop():
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(6, (4, 9), generator=gen)
    X = nlp.cooccurrence(tokens, 6, window=3)
    expected = torch.zeros(6, 6, dtype=torch.float64)
    for doc in tokens.tolist():
        for a in range(len(doc)):
            for b in range(len(doc)):
                if 1 <= abs(a - b) <= 3:
                    expected[doc[a], doc[b]] += 1.0 / abs(a - b)
    torch.testing.assert_close(X, expected)
    torch.testing.assert_close(X, X.T)


def test_glove_weight_and_loss():
    x = torch.tensor([1.0, 50.0, 100.0, 400.0])
    torch.testing.assert_close(nlp.glove_weight(x), torch.tensor([0.01**0.75, 0.5**0.75, 1.0, 1.0]))
    gen = torch.Generator().manual_seed(0)
    w, wc = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    b, bc = torch.randn(5, generator=gen), torch.randn(5, generator=gen)
    i, j, xs = torch.tensor([0, 1, 4]), torch.tensor([2, 2, 3]), torch.tensor([3.0, 120.0, 7.0])
    expected = sum(
        0.5
        * min(1.0, (xs[k].item() / 100) ** 0.75)
        * (w[i[k]] @ wc[j[k]] + b[i[k]] + bc[j[k]] - math.log(xs[k].item())).item() ** 2
        for k in range(3)
    )
    assert nlp.glove_loss(w, wc, b, bc, i, j, xs).item() == pytest.approx(expected, rel=1e-5)
    # the gradient touches only the rows of the words in the batch: it is sparse
    w.requires_grad_(True)
    nlp.glove_loss(w, wc, b, bc, i, j, xs).backward()
    touched = (w.grad != 0).any(1)
    assert touched.tolist() == [True, True, False, False, True]


def _entries():
    return torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([3.0, 5.0])


def _sgd():
    from optbook.core import transforms as T

    return T.scale_by_learning_rate(0.1), T.scale_by_learning_rate(0.1)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: nlp.zipf_probabilities(0), "vocab_size"),
        (lambda: nlp.zipf_probabilities(10, -1.0), "exponent"),
        (lambda: nlp.sample_documents(0, 5, 10), "n_docs"),
        (lambda: nlp.sample_documents(3, 5, 10, topic_share=1.5), "topic_share"),
        (lambda: nlp.cooccurrence(torch.zeros(2, 3, dtype=torch.long), 4, window=0), "window"),
        (lambda: nlp.logistic_teacher(10, [1], [1]), "distinct"),
        (lambda: nlp.glove_weight(torch.ones(2), x_max=0), "x_max"),
        (lambda: nlp.planted_topics(10, 5, 20, 0), "n_topics"),
        (lambda: nlp.planted_topics(10, 5, 20, 4, topic_share=-0.1), "topic_share"),
        (lambda: nlp.neighbour_agreement(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), k=5), "k"),
        (lambda: nlp.neighbour_agreement(torch.randn(5, 3), torch.zeros(4, dtype=torch.long), k=2), "word_topic"),
        (lambda: nlp.fit_glove(*_entries(), 4, 0, *_sgd(), seeds=[0]), "dim"),
        (lambda: nlp.fit_glove(*_entries()[:2], torch.ones(3), 4, 2, *_sgd(), seeds=[0]), "same length"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def _glove_c(records, W, b, eta=0.05, x_max=100.0, alpha=0.75, clip=100.0):
    """A direct transcription of glove.c's inner loop (stanfordnlp/GloVe, src/glove.c at HEAD), one record
    at a time, in float64 Python scalars. W holds word rows 0..V-1 and context rows V..2V-1; b the biases."""
    V = len(W) // 2
    D = len(W[0])
    gradsq = [[1.0] * D for _ in W]
    gradsq_b = [1.0] * len(W)
    for w1, w2, val in records:
        l1, l2 = w1, w2 + V
        diff = sum(W[l1][c] * W[l2][c] for c in range(D)) + b[l1] + b[l2] - math.log(val)
        fdiff = diff if val > x_max else (val / x_max) ** alpha * diff
        for c in range(D):
            temp1 = min(max(fdiff * W[l2][c], -clip), clip) * eta
            temp2 = min(max(fdiff * W[l1][c], -clip), clip) * eta
            W[l1][c] -= temp1 / math.sqrt(gradsq[l1][c])
            W[l2][c] -= temp2 / math.sqrt(gradsq[l2][c])
            gradsq[l1][c] += temp1 * temp1
            gradsq[l2][c] += temp2 * temp2
        b[l1] -= fdiff / math.sqrt(gradsq_b[l1])
        b[l2] -= fdiff / math.sqrt(gradsq_b[l2])
        gradsq_b[l1] += fdiff * fdiff
        gradsq_b[l2] += fdiff * fdiff
    return W, b


def test_glove_adagrad_piece_is_glove_c_exactly():
    from optbook.core import transforms as T

    gen = torch.Generator().manual_seed(0)
    V, D = 6, 3
    W0 = (torch.rand(2 * V, D, generator=gen, dtype=torch.float64) - 0.5) / D
    b0 = torch.randn(2 * V, generator=gen, dtype=torch.float64) * 0.1
    # 300 records, some with X > x_max; a large count makes a few gradient components exceed the clip
    recs = [
        (int(a), int(c), float(v))
        for a, c, v in zip(
            torch.randint(V, (300,), generator=gen),
            torch.randint(V, (300,), generator=gen),
            torch.rand(300, generator=gen, dtype=torch.float64) * 300 + 0.2,
        )
    ]
    W_ref, b_ref = _glove_c(recs, W0.tolist(), b0.tolist(), clip=0.05)

    vec = T.chain(T.scale_by_glove_adagrad(0.05, clip=0.05), T.scale_by_learning_rate(1.0))
    bias = T.chain(T.scale_by_glove_adagrad(1.0, clip=None), T.scale_by_learning_rate(1.0))
    params = [W0[:V].clone(), W0[V:].clone(), b0[:V].clone(), b0[V:].clone()]
    pieces = [vec, vec, bias, bias]
    states = [p.init(q) for p, q in zip(pieces, params)]
    clipped = 0
    for a, c, v in recs:
        p = [q.clone().requires_grad_() for q in params]
        nlp.glove_loss(*p, torch.tensor([a]), torch.tensor([c]), torch.tensor([v], dtype=torch.float64)).backward()
        clipped += int((p[0].grad.abs() > 0.05).sum())
        for k in range(4):
            u, states[k] = pieces[k].update(p[k].grad, states[k], params[k])
            params[k] = params[k] + u
    assert clipped > 0  # the clipping branch was exercised
    torch.testing.assert_close(
        torch.cat([params[0], params[1]]), torch.tensor(W_ref, dtype=torch.float64), rtol=0, atol=1e-13
    )
    torch.testing.assert_close(
        torch.cat([params[2], params[3]]), torch.tensor(b_ref, dtype=torch.float64), rtol=0, atol=1e-13
    )


def test_glove_adagrad_is_past_only_adagrad_and_not_torch_adagrad():
    from optbook.core import transforms as T

    gen = torch.Generator().manual_seed(1)
    grads = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    piece = T.scale_by_glove_adagrad(0.05, clip=None)
    state = piece.init(torch.zeros(4, dtype=torch.float64))
    past = torch.zeros(4, dtype=torch.float64)
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    torch_adagrad = torch.optim.Adagrad([p], lr=1.0, initial_accumulator_value=1 / 0.05**2, eps=0.0)
    for g in grads:
        u, state = piece.update(g, state, None)
        torch.testing.assert_close(u, g / (1 / 0.05**2 + past).sqrt())  # the closed form, past gradients only
        past = past + g * g
        before = p.detach().clone()
        p.grad = g.clone()
        torch_adagrad.step()
        assert not torch.allclose(before - p.detach(), u, rtol=1e-6, atol=0)  # torch adds g_t^2 first
    # the first step of glove.c is exactly eta * g
    first, _ = piece.update(grads[0], piece.init(grads[0]), None)
    torch.testing.assert_close(first, 0.05 * grads[0])


def test_planted_topics_and_neighbour_agreement():
    tokens, doc_topics, word_topic = nlp.planted_topics(400, 50, 120, 6, topic_share=0.8, generator=0)
    assert tokens.shape == (400, 50) and doc_topics.shape == (400,)
    assert word_topic.tolist() == [k % 6 for k in range(120)]
    # with topic_share 0.8, most tokens of a document belong to its topic
    same = (word_topic[tokens] == doc_topics[:, None]).double().mean().item()
    assert same > 0.8
    # frequencies still follow Zipf roughly: the most frequent word is word 0
    assert torch.bincount(tokens.flatten(), minlength=120).argmax().item() == 0
    # vectors that are the one-hot topic score 1; random vectors score about chance (1/6)
    onehot = torch.nn.functional.one_hot(word_topic, 6).double() + 0.01 * torch.randn(120, 6, dtype=torch.float64)
    assert nlp.neighbour_agreement(onehot, word_topic, k=5).min().item() == 1.0
    rand = torch.randn(20, 120, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    chance = nlp.neighbour_agreement(rand, word_topic, k=5)
    assert chance.shape == (20, 120)
    assert abs(chance.mean().item() - 19 / 119) < 0.02


def test_fit_glove_learns_topics_and_runs_a_grid():
    from optbook.core import transforms as T

    tokens, _, word_topic = nlp.planted_topics(300, 60, 100, 5, topic_share=0.7, generator=1)
    X = nlp.cooccurrence(tokens, 100, window=5)
    i, j = X.nonzero(as_tuple=True)
    x = X[i, j].float()
    eta = torch.tensor([0.02, 0.05])[:, None, None].repeat_interleave(2, 0)  # 2 settings x 2 seeds
    vec = T.chain(T.scale_by_glove_adagrad(eta), T.scale_by_learning_rate(1.0))
    bias = T.chain(T.scale_by_glove_adagrad(1.0, clip=None), T.scale_by_learning_rate(1.0))
    fit = nlp.fit_glove(i, j, x, 100, 8, vec, bias, seeds=[0, 1, 0, 1], epochs=3, batch=256)
    assert fit.vectors.shape == (4, 4, 100, 8) and fit.cost.shape == (4, 4)
    assert (fit.cost[-1] < fit.cost[0]).all()
    agree = nlp.neighbour_agreement(fit.vectors, word_topic).mean(-1)  # (epochs + 1, models)
    assert (agree[0] < 0.3).all() and (agree[-1, 2:] > agree[0, 2:] + 0.15).all()
    # same seed, same setting: same start
    torch.testing.assert_close(fit.vectors[0, 0], fit.vectors[0, 2])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"eta": 0.0}, "eta"),
        ({"eta": -1.0}, "eta"),
        ({"clip": 0.0}, "clip"),
        ({"initial_accumulator_value": 0.0}, "initial_accumulator_value"),
    ],
)
def test_glove_adagrad_rejects_bad_input(kwargs, name):
    from optbook.core import transforms as T

    with pytest.raises(ValueError, match=name):
        T.scale_by_glove_adagrad(**kwargs)

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
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()

r"""Text made by code for the NLP application: Zipf corpora, bags of words, co-occurrence counts, GloVe.

Natural language is dominated by a few frequent words and a long tail of rare ones. Zipf's law says
the $k$-th most frequent word of a vocabulary of size $V$ has probability

$$p_k = \frac{k^{-s}}{\sum_{j=1}^{V} j^{-s}},\qquad k = 1, \dots, V,$$

with $s \approx 1$ for English {cite}`zipf1949human`. Everything here is generated from a seeded
``torch.Generator``, so a notebook gets the same corpus on every run and needs no download.

* :func:`zipf_probabilities`: the law above;
* :func:`sample_documents`: documents as token sequences, optionally with topics (words that come together);
* :func:`bag_of_words`: documents as count (or presence) vectors;
* :func:`logistic_teacher`: a labelling rule whose signal sits on chosen frequent and rare words;
* :func:`cooccurrence`: GloVe's distance-weighted co-occurrence matrix $X_{ij}$;
* :func:`glove_weight` and :func:`glove_loss`: GloVe's weighted least squares {cite}`pennington2014glove`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import validate

__all__ = [
    "zipf_probabilities",
    "sample_documents",
    "bag_of_words",
    "logistic_teacher",
    "LabelledCorpus",
    "labelled_corpus",
    "cooccurrence",
    "glove_weight",
    "glove_loss",
]


def _generator(generator):
    if generator is None:
        return torch.Generator().manual_seed(0)
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    return generator


def zipf_probabilities(vocab_size: int, exponent: float = 1.0, dtype=torch.float64) -> torch.Tensor:
    r"""$p_k \propto k^{-s}$ for ranks $k = 1..V$ (index ``k - 1``), normalised to sum to 1."""
    validate.integer_at_least("vocab_size", vocab_size, 1)
    if not (0.0 <= exponent < 10.0):
        raise ValueError(f"Invalid exponent: {exponent!r}. exponent must be in [0, 10).")
    ranks = torch.arange(1, vocab_size + 1, dtype=dtype)
    p = ranks ** (-exponent)
    return p / p.sum()


def sample_documents(
    n_docs: int,
    doc_length: int,
    vocab_size: int,
    exponent: float = 1.0,
    *,
    n_topics: int = 0,
    topic_share: float = 0.5,
    topic_size: int = 20,
    generator=None,
):
    r"""Documents as token ids, shape ``(n_docs, doc_length)``, word ``k - 1`` having Zipf rank ``k``.

    Without topics every token is drawn independently from :func:`zipf_probabilities`. With
    ``n_topics > 0`` each document picks a topic $z$; each topic owns ``topic_size`` random words (drawn
    from the Zipf law, so topics mix frequent and rare words), and a token comes from the topic's words
    (uniformly) with probability ``topic_share``, else from the Zipf law. Topics make words co-occur,
    which gives :func:`cooccurrence` a structure that word vectors can learn. Returns ``(tokens, topics)``;
    ``topics`` is ``None`` without topics.
    """
    validate.integer_at_least("n_docs", n_docs, 1)
    validate.integer_at_least("doc_length", doc_length, 1)
    validate.integer_at_least("n_topics", n_topics, 0)
    validate.integer_at_least("topic_size", topic_size, 1)
    if not (0.0 <= topic_share <= 1.0):
        raise ValueError(f"Invalid topic_share: {topic_share!r}. topic_share must be in [0, 1].")
    gen = _generator(generator)
    p = zipf_probabilities(vocab_size, exponent)
    tokens = torch.multinomial(p, n_docs * doc_length, replacement=True, generator=gen).view(n_docs, doc_length)
    if n_topics == 0:
        return tokens, None
    words = torch.multinomial(p, n_topics * topic_size, replacement=True, generator=gen).view(n_topics, topic_size)
    topics = torch.randint(n_topics, (n_docs,), generator=gen)
    pick = torch.randint(topic_size, (n_docs, doc_length), generator=gen)
    from_topic = torch.rand(n_docs, doc_length, generator=gen) < topic_share
    topical = words[topics[:, None], pick]
    return torch.where(from_topic, topical, tokens), topics


def bag_of_words(tokens: torch.Tensor, vocab_size: int, binary: bool = False, dtype=torch.float32) -> torch.Tensor:
    """Counts $x_{dk}$ of word $k$ in document $d$, shape ``(n_docs, vocab_size)``; ``binary`` gives presence."""
    validate.integer_at_least("vocab_size", vocab_size, 1)
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (n_docs, doc_length), got {tuple(tokens.shape)}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"tokens must lie in [0, vocab_size) = [0, {vocab_size})")
    counts = torch.zeros(tokens.shape[0], vocab_size, dtype=dtype)
    if binary:  # written in place, so even dtype=torch.bool works without a wider temporary
        return counts.scatter_(1, tokens, torch.ones(tokens.shape, dtype=dtype))
    return counts.scatter_add_(1, tokens, torch.ones(tokens.shape, dtype=dtype))


def logistic_teacher(vocab_size: int, frequent: list, rare: list, weight: float = 3.0, generator=None):
    r"""True weights $w^\star$: $\pm$``weight`` on the word ids in ``frequent`` and ``rare``, 0 elsewhere.

    Signs are drawn at random (seeded). A document with presence vector $x$ gets label 1 with
    probability $\sigma(w^{\star\top} x)$.
    """
    validate.integer_at_least("vocab_size", vocab_size, 1)
    ids = list(frequent) + list(rare)
    if len(set(ids)) != len(ids) or any(not (0 <= i < vocab_size) for i in ids):
        raise ValueError(f"frequent and rare must be distinct word ids in [0, {vocab_size})")
    gen = _generator(generator)
    w = torch.zeros(vocab_size, dtype=torch.float64)
    signs = torch.randint(2, (len(ids),), generator=gen).double() * 2 - 1
    w[ids] = weight * signs
    return w


@dataclass
class LabelledCorpus:
    """A labelled bag-of-words corpus: presence features ``x``, labels ``y``, the teacher ``w_true``."""

    x: torch.Tensor  # (n_docs, V) presence, bool (one byte per entry; take ``x[idx].float()``)
    y: torch.Tensor  # (n_docs,) labels in {0, 1}, float32
    w_true: torch.Tensor  # (V,) the teacher's weights, float64
    doc_frequency: torch.Tensor  # (V,) fraction of documents that contain each word
    frequent: list
    rare: list


def labelled_corpus(
    n_docs: int,
    doc_length: int,
    vocab_size: int,
    frequent: list,
    rare: list,
    *,
    exponent: float = 1.0,
    weight: float = 3.0,
    generator=None,
) -> LabelledCorpus:
    r"""Zipf documents labelled by :func:`logistic_teacher`: $y \sim \mathrm{Bernoulli}(\sigma(w^{\star\top}x))$."""
    gen = _generator(generator)
    w = logistic_teacher(vocab_size, frequent, rare, weight, gen)
    tokens, _ = sample_documents(n_docs, doc_length, vocab_size, exponent, generator=gen)
    x = bag_of_words(tokens, vocab_size, binary=True, dtype=torch.bool)
    score = torch.cat([xs.double() @ w for xs in x.split(4096)])
    y = (torch.rand(n_docs, generator=gen, dtype=torch.float64) < torch.sigmoid(score)).float()
    return LabelledCorpus(x, y, w, _mean_rows(x), list(frequent), list(rare))


def _mean_rows(x: torch.Tensor) -> torch.Tensor:
    return sum(xs.double().sum(0) for xs in x.split(4096)) / x.shape[0]


def cooccurrence(tokens: torch.Tensor, vocab_size: int, window: int = 5) -> torch.Tensor:
    r"""GloVe's co-occurrence matrix: $X_{ij} = \sum$ over pairs of tokens $i, j$ at distance $1 \le d \le$ ``window``
    inside a document of $1/d$. Symmetric, float64, shape ``(vocab_size, vocab_size)``.
    """
    validate.integer_at_least("vocab_size", vocab_size, 1)
    validate.integer_at_least("window", window, 1)
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (n_docs, doc_length), got {tuple(tokens.shape)}")
    X = torch.zeros(vocab_size * vocab_size, dtype=torch.float64)
    for d in range(1, min(window, tokens.shape[1] - 1) + 1):
        left, right = tokens[:, :-d].reshape(-1), tokens[:, d:].reshape(-1)
        w = torch.full(left.shape, 1.0 / d, dtype=torch.float64)
        X.index_add_(0, left * vocab_size + right, w)
        X.index_add_(0, right * vocab_size + left, w)
    return X.view(vocab_size, vocab_size)


def glove_weight(x: torch.Tensor, x_max: float = 100.0, alpha: float = 0.75) -> torch.Tensor:
    r"""GloVe's weighting $f(x) = \min\big(1, (x/x_{max})^\alpha\big)$.

    The defaults are the paper's, $x_{max} = 100$ and $\alpha = 3/4$."""
    if not x_max > 0:
        raise ValueError(f"Invalid x_max: {x_max!r}. x_max must be a finite number > 0.")
    if not alpha > 0:
        raise ValueError(f"Invalid alpha: {alpha!r}. alpha must be a finite number > 0.")
    return (x / x_max).pow(alpha).clamp(max=1.0)


def glove_loss(w, w_ctx, b, b_ctx, i, j, x, x_max: float = 100.0, alpha: float = 0.75) -> torch.Tensor:
    r"""GloVe's weighted least squares on a batch $B$ of nonzero entries $(i, j, X_{ij})$:

    $$J_B = \tfrac12 \sum_{(i,j) \in B} f(X_{ij})\,\big(w_i^\top \tilde w_j + b_i + \tilde b_j - \log X_{ij}\big)^2 .$$

    A sum with the factor 1/2, as the reference code ``glove.c`` computes it, so that each entry
    contributes the gradient GloVe's own updates use and ``lr = 0.05`` means what it means there.
    Each entry touches two rows of the word matrices and two biases only: the gradient is sparse.
    """
    if not (i.shape == j.shape == x.shape and i.dim() == 1):
        raise ValueError("i, j and x must be 1-D tensors of the same length (one entry of X each)")
    pred = (w[i] * w_ctx[j]).sum(-1) + b[i] + b_ctx[j]
    return 0.5 * (glove_weight(x, x_max, alpha) * (pred - x.log()) ** 2).sum()

"""Ranking models from pairwise outcomes: the Bradley-Terry model, as Chatbot Arena uses it.

Each comparison says which of two models gave the better answer to one prompt. The
Bradley-Terry model gives every model ``m`` a score ``s_m`` and says::

    P(model i beats model j) = sigma(s_i - s_j) = 1 / (1 + exp(-(s_i - s_j)))

(the reward model of chapter 09 is the same model, with answers in place of models). The
scores are fitted by maximum likelihood: with outcome ``y_k`` = 1 when ``i_k`` won, 0 when
``j_k`` won and 1/2 for a tie, minimise::

    L(s) = - sum_k [ y_k log sigma(s_{i_k} - s_{j_k}) + (1 - y_k) log sigma(s_{j_k} - s_{i_k}) ]
           + (ridge / 2) * ||s||^2

Only differences of scores are identified (adding a constant to every score changes no
probability), so the fit reports scores with mean 0. The tiny ridge keeps the fit finite
when one model won every comparison it played. Scores are on the log-odds scale: a gap of
1.0 means the better model wins 73% of the time (sigma(1) = 0.731). Chatbot Arena's Elo-like
numbers are ``400 / ln 10`` times these.

The 95% intervals come from the bootstrap: resample the prompts (all comparisons made on a
prompt travel together, since they share its difficulty), refit, read the 2.5% and 97.5%
quantiles of each score.

Plain NumPy; nothing here knows about models or judges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from course_utils.evaluation.uncertainty import Interval

ELO_SCALE = 400 / np.log(10)


def _outcome_arrays(winners: Sequence[int], losers: Sequence[int], ties: Sequence[bool] | None,
                    n_models: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i = np.asarray(winners, dtype=int)
    j = np.asarray(losers, dtype=int)
    if i.shape != j.shape or i.ndim != 1:
        raise ValueError(f"winners and losers must be 1-D and of equal length, got {i.shape} and {j.shape}")
    if i.size == 0:
        raise ValueError("bradley_terry needs at least one comparison")
    if np.any(i == j):
        raise ValueError(f"comparison {int(np.argmax(i == j))} pits a model against itself")
    for name, a in (("winners", i), ("losers", j)):
        if a.min() < 0 or a.max() >= n_models:
            raise ValueError(f"{name} holds model index {int(a.min() if a.min() < 0 else a.max())}, "
                             f"outside 0..{n_models - 1}")
    y = np.ones(i.size)
    if ties is not None:
        t = np.asarray(ties, dtype=bool)
        if t.shape != i.shape:
            raise ValueError(f"ties must have one entry per comparison, got {t.shape} for {i.shape}")
        y[t] = 0.5
    return i, j, y


def bradley_terry(winners: Sequence[int], losers: Sequence[int], n_models: int,
                  ties: Sequence[bool] | None = None, ridge: float = 1e-3,
                  iterations: int = 100) -> np.ndarray:
    """Maximum-likelihood Bradley-Terry scores, shape ``(n_models,)``, mean 0, log-odds scale.

    ``winners[k]`` beat ``losers[k]`` in comparison ``k`` (model indices); where ``ties[k]``
    is true the two drew (outcome 1/2 each way). Fitted by Newton's method on the convex
    loss in the module docstring; a model that played no comparison gets score 0.
    """
    i, j, y = _outcome_arrays(winners, losers, ties, n_models)
    s = np.zeros(n_models)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(s[i] - s[j])))          # P(i beats j) under the current scores
        r = y - p                                          # d log-likelihood / d(s_i - s_j)
        grad = ridge * s
        np.add.at(grad, i, -r)
        np.add.at(grad, j, r)
        w = p * (1 - p)
        hess = ridge * np.eye(n_models)
        np.add.at(hess, (i, i), w)
        np.add.at(hess, (j, j), w)
        np.add.at(hess, (i, j), -w)
        np.add.at(hess, (j, i), -w)
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]   # ridge 0: scores fixed only up to a shift
        s -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return s - s.mean()


def bradley_terry_ci(winners: Sequence[int], losers: Sequence[int], n_models: int,
                     ties: Sequence[bool] | None = None, groups: Sequence[int] | None = None,
                     n_boot: int = 1000, seed: int = 0, ridge: float = 1e-3) -> list[Interval]:
    """Bradley-Terry scores with 95% percentile-bootstrap intervals, one :class:`Interval` per model.

    ``groups[k]`` names the prompt of comparison ``k``; the bootstrap resamples prompts with
    replacement and keeps each prompt's comparisons together (without ``groups`` every
    comparison is its own group). ``Interval.n`` is the number of comparisons.
    """
    i, j, y = _outcome_arrays(winners, losers, ties, n_models)
    g = np.arange(i.size) if groups is None else np.asarray(groups)
    if g.shape != i.shape:
        raise ValueError(f"groups must have one entry per comparison, got {g.shape} for {i.shape}")
    tie = y == 0.5
    point = bradley_terry(i, j, n_models, tie, ridge)
    labels, inverse = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inverse == u) for u in range(labels.size)]
    rng = np.random.default_rng(seed)
    boots = np.empty((n_boot, n_models))
    for b in range(n_boot):
        pick = np.concatenate([members[u] for u in rng.integers(0, labels.size, labels.size)])
        boots[b] = bradley_terry(i[pick], j[pick], n_models, tie[pick], ridge)
    lo, hi = np.quantile(boots, [0.025, 0.975], axis=0)
    return [Interval(float(point[m]), float(lo[m]), float(hi[m]), int(i.size)) for m in range(n_models)]


def outcomes_from_scores(scores: np.ndarray, tie_tol: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of models on every prompt, decided by a score table.

    ``scores`` has shape ``(n_prompts, n_models)``: one judge's score of each model's answer
    to each prompt (the gold reward, or a reward model's). For each prompt and each pair
    ``a < b`` the higher score wins; ``|difference| <= tie_tol`` is a tie. Returns
    ``(winners, losers, ties, groups)``, one entry per comparison, ``groups`` = prompt index,
    ready for :func:`bradley_terry_ci`.
    """
    x = np.asarray(scores, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"scores must have shape (n_prompts, n_models >= 2), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores contain NaN or infinity")
    a, b = np.triu_indices(x.shape[1], k=1)
    diff = x[:, a] - x[:, b]                                          # (n_prompts, n_pairs)
    a_wins = diff >= 0
    winners = np.where(a_wins, a, b).ravel()
    losers = np.where(a_wins, b, a).ravel()
    ties = (np.abs(diff) <= tie_tol).ravel()
    groups = np.repeat(np.arange(x.shape[0]), a.size)
    return winners, losers, ties, groups


def rank_inversions(scores_a: Sequence[float], scores_b: Sequence[float]) -> list[tuple[int, int]]:
    """Pairs ``(m, n)`` with ``m`` above ``n`` by ``scores_a`` but below it by ``scores_b``.

    E.g. ``scores_a`` from the gold judge and ``scores_b`` from the reward model as judge:
    every pair listed is one the reward model ranks the wrong way round.
    """
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"rank_inversions needs equal-length score lists, got {a.shape} and {b.shape}")
    return [(m, n) for m in range(a.size) for n in range(a.size)
            if a[m] > a[n] and b[m] < b[n]]

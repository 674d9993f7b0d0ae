"""How sure is a number? Intervals for the course's measurements.

Three situations cover every comparison the chapters make:

* **a metric over seeds** (final return, gold reward, accuracy of a training run): the mean of
  ``n`` runs and its 95% interval ``mean ± t_{0.975, n-1} · s / √n`` (Student's t, because
  ``n`` is small; ``s`` is the sample standard deviation). :func:`mean_ci`.
* **an accuracy on n items** (k right out of n): the Wilson score interval, which stays
  inside [0, 1] and behaves at p near 0 or 1, unlike ``p ± 1.96 √(p(1-p)/n)``
  (:func:`binomial_se` gives that normal-approximation standard error too). :func:`wilson`.
* **a difference measured on the same items** (model A against model B on the same prompts,
  a win rate): resample the items with replacement, recompute the statistic, and read the
  2.5% and 97.5% quantiles (the percentile bootstrap). Pairing keeps the items' shared
  difficulty out of the interval. :func:`paired_bootstrap`, :func:`bootstrap_ci`. When each
  item is simply right or wrong for each model, the exact McNemar test counts only the items
  where the two disagree. :func:`mcnemar`.

Everything is plain NumPy, on lists of floats; nothing here knows about models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Two-sided 95% critical values of Student's t for 1..30 degrees of freedom.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a 95% interval ``[lo, hi]`` and the number ``n`` behind it."""
    value: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def fmt(self, digits: int = 2, percent: bool = False) -> str:
        """``"0.93 [0.88, 0.97] (n=5)"``, or with ``percent=True`` ``"93.0% [88.0, 97.0]"``."""
        if percent:
            d = max(digits - 2, 0) if digits > 2 else 1
            return f"{100 * self.value:.{d}f}% [{100 * self.lo:.{d}f}, {100 * self.hi:.{d}f}] (n={self.n})"
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}] (n={self.n})"

    def __str__(self) -> str:
        return self.fmt()


def t_critical(df: int) -> float:
    """Two-sided 95% critical value of Student's t with ``df`` degrees of freedom (1.96 past 30)."""
    if df < 1:
        raise ValueError(f"t_critical needs at least 1 degree of freedom, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def _finite(values: Sequence[float], what: str) -> np.ndarray:
    x = np.asarray(list(values), dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{what} needs a non-empty list of numbers, got {list(values)!r}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} got a NaN or infinite value: {x.tolist()}")
    return x


def mean_ci(values: Sequence[float]) -> Interval:
    """Mean of ``values`` (one number per seed) with its 95% t interval.

    ``mean ± t_{0.975, n-1} · s / √n`` with ``s`` the sample standard deviation (``ddof=1``).
    With one value the interval is ``[-inf, inf]``: one seed says nothing about the spread.
    """
    x = _finite(values, "mean_ci")
    m = float(x.mean())
    if x.size == 1:
        return Interval(m, -math.inf, math.inf, 1)
    half = t_critical(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Interval(m, m - half, m + half, int(x.size))


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` items: ``√(p(1-p)/n)``."""
    if n <= 0:
        raise ValueError(f"binomial_se needs n > 0 items, got {n}")
    return math.sqrt(p * (1 - p) / n)


def wilson(k: int, n: int, z: float = 1.96) -> Interval:
    """Accuracy ``k/n`` with its Wilson score interval (95% for ``z = 1.96``).

    ``centre = (p + z²/2n) / (1 + z²/n)``, ``half = z √(p(1-p)/n + z²/4n²) / (1 + z²/n)``.
    """
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def bootstrap_ci(values: Sequence[float], stat: Callable[[np.ndarray], float] = np.mean,
                 n_boot: int = 10_000, seed: int = 0) -> Interval:
    """``stat(values)`` with a 95% percentile-bootstrap interval (items resampled with replacement)."""
    x = _finite(values, "bootstrap_ci")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    boots = np.array([stat(x[i]) for i in idx]) if stat is not np.mean else x[idx].mean(axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return Interval(float(stat(x)), float(lo), float(hi), int(x.size))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = 10_000,
                     seed: int = 0) -> Interval:
    """Mean difference ``mean(a - b)`` over paired items, with a 95% percentile-bootstrap interval.

    ``a[i]`` and ``b[i]`` must be measured on the same item ``i`` (the same prompt, the same
    test question). Resampling the items, not the two lists separately, keeps each item's
    difficulty out of the interval. For a win rate pass ``a`` = 1 where A won (0.5 for a
    tie) and ``b`` = 0.5 everywhere: the interval is then around ``win rate - 0.5``.
    """
    x, y = _finite(a, "paired_bootstrap (a)"), _finite(b, "paired_bootstrap (b)")
    if x.size != y.size:
        raise ValueError(f"paired_bootstrap needs lists of equal length, got {x.size} and {y.size}")
    return bootstrap_ci(x - y, n_boot=n_boot, seed=seed)


def win_rate(a: Sequence[float], b: Sequence[float], n_boot: int = 10_000, seed: int = 0) -> Interval:
    """Share of items where ``a[i] > b[i]`` (ties count one half), with a bootstrap 95% interval."""
    x, y = _finite(a, "win_rate (a)"), _finite(b, "win_rate (b)")
    if x.size != y.size:
        raise ValueError(f"win_rate needs lists of equal length, got {x.size} and {y.size}")
    wins = (x > y).astype(float) + 0.5 * (x == y)
    return bootstrap_ci(wins, n_boot=n_boot, seed=seed)


@dataclass(frozen=True)
class McNemar:
    """Result of :func:`mcnemar`: items only A got right, items only B got right, exact two-sided p."""

    only_a: int
    only_b: int
    p_value: float


def mcnemar(a_right: Sequence[float], b_right: Sequence[float]) -> McNemar:
    """Exact McNemar test of two models scored right (1) or wrong (0) on the same items.

    Items both models get right, or both wrong, say nothing about which is better. Of the
    ``d = only_a + only_b`` items where they disagree, under "equally good" each is A's with
    probability 1/2, so ``only_a ~ Binomial(d, 1/2)`` and the two-sided p-value is
    ``min(1, 2 · Σ_{i ≤ min(only_a, only_b)} C(d, i) / 2^d)`` (chapter 09 computes it by hand).
    Items scored 0.5 (a tie) count for neither model.
    """
    x, y = _finite(a_right, "mcnemar (a_right)"), _finite(b_right, "mcnemar (b_right)")
    if x.size != y.size:
        raise ValueError(f"mcnemar needs lists of equal length, got {x.size} and {y.size}")
    only_a = int(((x == 1) & (y == 0)).sum())
    only_b = int(((x == 0) & (y == 1)).sum())
    d = only_a + only_b
    p = 2 * sum(math.comb(d, i) for i in range(min(only_a, only_b) + 1)) / 2 ** d if d else 1.0
    return McNemar(only_a, only_b, min(1.0, p))

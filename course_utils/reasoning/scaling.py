"""Many samples per problem: pass@k, majority vote and best-of-n.

**pass@k** is the chance that at least one of ``k`` sampled answers is right. From ``n >= k``
samples of which ``c`` are right, the unbiased estimator (Chen et al., 2021, Codex) is::

    pass@k = 1 - C(n - c, k) / C(n, k)  =  1 - prod_{i = n-c+1}^{n} (1 - k / i)

(the product form avoids huge binomials). Averaged over problems it gives one curve per model;
Yue et al. (2025) compare such curves before and after RL for k up to 256.

**Majority vote** (self-consistency; Wang et al., 2023) answers with the most common parsed
answer of ``n`` samples; **best-of-n with a verifier** answers right if any of the ``n`` is
right, which is pass@n when the verifier is the exact checker. Both cost ``n`` samples, so the
fair comparison with one sample of another model is at equal sampled tokens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` right (``0 <= c <= n``, ``1 <= k <= n``)."""
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def pass_at_k_curve(correct_counts: Sequence[int], n: int, ks: Sequence[int]) -> dict[int, float]:
    """Mean pass@k over problems, for every ``k`` in ``ks``; ``correct_counts[i]`` of ``n`` right."""
    if not correct_counts:
        raise ValueError("no problems")
    return {k: sum(pass_at_k(n, c, k) for c in correct_counts) / len(correct_counts) for k in ks}


def majority_vote(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most common answer, ignoring ``None`` (unparsed); ties go to the one seen first."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)

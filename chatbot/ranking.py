"""Rank fusion, diversity and context order: pure functions over ranked ids.

- Reciprocal rank fusion (Cormack et al., 2009): score(d) = sum_i w_i / (c + rank_i(d)),
  the fusion MedRAG found most reliable for lexical + dense retrieval on medical text.
- Maximal marginal relevance for optional diversity.
- "Lost in the middle" order (Liu et al., 2023): models use the start and the end of
  a long context best, so the strongest passages go there and the weakest in the middle.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], weights: Sequence[float] | None = None, c: int = 60
) -> list[tuple[K, float]]:
    """Fuse ranked id lists (best first) into one, best first, with fused scores."""
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[K, float] = {}
    first_seen: dict[K, int] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (c + rank)
            first_seen.setdefault(key, len(first_seen))
    return sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))


def mmr(
    candidates: Sequence[T],
    relevance: Sequence[float],
    similarity: Callable[[T, T], float],
    k: int,
    lambda_: float = 0.7,
) -> list[T]:
    """Pick k candidates trading relevance against similarity to those already picked."""
    chosen: list[int] = []
    left = list(range(len(candidates)))
    while left and len(chosen) < k:

        def gain(i: int) -> float:
            redundancy = max((similarity(candidates[i], candidates[j]) for j in chosen), default=0.0)
            return lambda_ * relevance[i] - (1 - lambda_) * redundancy

        best = max(left, key=gain)
        chosen.append(best)
        left.remove(best)
    return [candidates[i] for i in chosen]


def edges_first(items: Sequence[T]) -> list[T]:
    """Best-first items reordered so ranks 1, 3, 5... lead and ..., 4, 2 close the list."""
    front = list(items[0::2])
    back = list(items[1::2])
    return front + back[::-1]

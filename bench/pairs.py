"""Same-phase ratios: subjects ordered so compared pairs run next to each other, ratios taken per round.

A shared machine's bandwidth drifts by half within minutes; two subjects run back to back see nearly the same
phase. So each pair's ratio is the median over rounds of that round's ratio, not a ratio of medians taken
over different minutes.
"""
from __future__ import annotations

import itertools

#: (numerator, denominator) pairs the report compares, most important first (weight 2: ours vs llama.cpp).
PAIRS = [("ours-bf16", "llamacpp-bf16", 2), ("ours-int8", "llamacpp-q8_0", 2), ("ours-int4", "llamacpp-q4_0", 2),
         ("ours-int4", "llamacpp-q4_1", 1), ("ours-int4", "ours-int8", 1), ("ours-int8", "ours-bf16", 1)]
FIGURES = ("decode_tokens_per_s", "prefill_tokens_per_s")


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def present_pairs(names: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for a, b, _ in PAIRS if a in names and b in names]


_WEIGHTS = {frozenset((a, b)): w for a, b, w in PAIRS}


def _score(order: tuple[str, ...]) -> int:
    return sum(_WEIGHTS.get(frozenset(p), 0) for p in zip(order, order[1:]))


def order_subjects(names: list[str]) -> list[str]:
    """The order (within a round) that puts the most (weighted) compared pairs next to each other; among equal
    orders the given one wins as far as possible (stable: first found in permutation order of `names`)."""
    if len(names) > 8:  # 8! orders is the most worth trying
        return list(names)
    best = max(itertools.permutations(names), key=_score)
    return list(best) if _score(best) > _score(tuple(names)) else list(names)


def adjacent(order: list[str], a: str, b: str) -> bool:
    return abs(order.index(a) - order.index(b)) == 1


def pair_ratios(rounds: list[dict], order: list[str]) -> list[dict]:
    """For each compared pair present: per-round ratios of each figure and their median, per shape.

    rounds: one dict per round, {subject: {shape key: {figure: value}}} (a failed subject is absent)."""
    names = [n for n in order if any(n in r for r in rounds)]
    out = []
    for a, b in present_pairs(names):
        shapes = sorted({key for r in rounds if a in r and b in r for key in r[a] if key in r[b]})
        for key in shapes:
            row = {"pair": (a, b), "shape": key, "adjacent": adjacent(order, a, b)}
            for figure in FIGURES:
                per_round = [r[a][key][figure] / r[b][key][figure] for r in rounds
                             if a in r and b in r and key in r[a] and key in r[b] and r[b][key][figure] > 0]
                row[figure] = {"rounds": per_round, "median": _median(per_round) if per_round else None}
            out.append(row)
    return out

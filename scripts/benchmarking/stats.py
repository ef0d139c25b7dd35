"""Percentiles and summaries of measured durations."""

from __future__ import annotations

import math
import statistics


def percentile(values: list[float], percent: float) -> float:
    """Return the nearest-rank percentile: the smallest value with ``percent`` % of the values at or below it."""
    if not values:
        raise ValueError("percentile of an empty list")
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: list[float]) -> dict[str, float | int]:
    """Summarize durations given in seconds as milliseconds."""
    if not seconds:
        return {"count": 0}
    milliseconds = [value * 1000 for value in seconds]
    return {
        "count": len(milliseconds),
        "p50": round(percentile(milliseconds, 50), 3),
        "p99": round(percentile(milliseconds, 99), 3),
        "min": round(min(milliseconds), 3),
        "max": round(max(milliseconds), 3),
        "mean": round(statistics.fmean(milliseconds), 3),
    }

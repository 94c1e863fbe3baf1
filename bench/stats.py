"""Percentiles and medians: every figure the benchmark prints comes through here."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PERCENTILES = (50, 90, 99)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (the definition most latency tools use)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(values: Iterable[float]) -> dict[str, float]:
    """n, p50, p90, p99, max and mean of a sample (in the sample's unit)."""
    data = sorted(values)
    summary: dict[str, float] = {"n": len(data)}
    for pct in PERCENTILES:
        summary[f"p{pct}"] = percentile(data, pct)
    summary["max"] = data[-1] if data else math.nan
    summary["mean"] = statistics.fmean(data) if data else math.nan
    return summary


def median_of_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The per-key median of several runs' summaries (numbers only; other keys from the first run)."""
    if not runs:
        return {}
    merged: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [run[key] for run in runs if key in run]
        if isinstance(first, bool) or not isinstance(first, (int, float)):
            merged[key] = first
        elif all(isinstance(v, (int, float)) and not math.isnan(v) for v in values):
            merged[key] = statistics.median(values)
        else:
            merged[key] = math.nan
    return merged


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def ns_to_ms(values: Iterable[int]) -> list[float]:
    return [v / 1e6 for v in values]

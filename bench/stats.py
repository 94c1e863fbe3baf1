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


def median_of_runs(runs: Sequence[Any]) -> Any:
    """The median of several runs' results, figure by figure: nested dicts are walked, numbers
    give their median, booleans hold if they held in every run, anything else is the first run's."""
    if not runs:
        return {}
    first = runs[0]
    if isinstance(first, Mapping):
        return {key: median_of_runs([run[key] for run in runs if isinstance(run, Mapping) and key in run]) for key in first}
    if isinstance(first, bool):
        return all(bool(run) for run in runs)
    if isinstance(first, (int, float)):
        values = [float(v) for v in runs if isinstance(v, (int, float)) and not math.isnan(v)]
        return statistics.median(values) if values else math.nan
    return first


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def ns_to_ms(values: Iterable[int]) -> list[float]:
    return [v / 1e6 for v in values]

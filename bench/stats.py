"""Percentiles and alternation ratios, standard library only (no numpy here)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """The q-th percentile (0-100), linear between ranks like numpy's default."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    return ordered[low] * (1 - weight) + ordered[high] * weight


def median_ci(values: Sequence[float], z: float = 1.96) -> Tuple[float, float]:
    """A distribution-free ~95% confidence interval of the median: the order
    statistics ``n/2 -+ z*sqrt(n)/2`` (the binomial's normal approximation),
    so no assumption about how the rounds scatter."""
    ordered = sorted(values)
    n = len(ordered)
    half = z * math.sqrt(n) / 2
    low = max(math.floor(n / 2 - half), 0)
    high = min(math.ceil(n / 2 + half), n - 1)
    return ordered[low], ordered[high]


@dataclass
class Ratio:
    """with / without, one ratio per alternation round; the median is the answer."""

    rounds: int
    median: Optional[float]
    p25: Optional[float]
    p75: Optional[float]
    with_median_s: Optional[float]
    without_median_s: Optional[float]
    ci95: Optional[Tuple[float, float]] = None
    """The median's ~95% confidence interval (``median_ci``)."""
    wall: Optional[Dict[str, Any]] = None
    """The same from wall-clock times (the main figures are CPU times)."""

    @classmethod
    def of(cls, with_times: List[float], without_times: List[float]) -> Ratio:
        ratios = [w / o for w, o in zip(with_times, without_times) if o > 0]
        return cls(
            rounds=len(ratios),
            median=percentile(ratios, 50),
            p25=percentile(ratios, 25),
            p75=percentile(ratios, 75),
            with_median_s=percentile(with_times, 50),
            without_median_s=percentile(without_times, 50),
            ci95=median_ci(ratios) if ratios else None,
        )

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def cpu_and_wall(
    cpu: Tuple[List[float], List[float]], wall: Tuple[List[float], List[float]]
) -> Dict[str, Any]:
    """A CPU-time ratio, with its wall-time twin attached."""
    ratio = Ratio.of(*cpu)
    ratio.wall = Ratio.of(*wall).as_dict()
    return ratio.as_dict()

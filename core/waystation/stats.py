"""Small statistics for comparing hit rates: Wilson score intervals and a two-proportion z-test.

Used by A/B runs (:mod:`waystation.ab`) and the adaptive waterfall (:mod:`waystation.adaptive`).
Ground floor: imports nothing from the rest of the package.

- :func:`wilson` — the Wilson score interval of ``hits`` out of ``n`` (better than the normal
  approximation for small ``n`` and for rates near 0 or 1; never leaves [0, 1]).
- :func:`two_proportion_z` — the pooled two-proportion z-test of ``a_hits/a_n`` against
  ``b_hits/b_n``: the z statistic and its two-sided p-value.
- :func:`stable_unit` — a number in [0, 1) from strings, the same in every process and run (how
  A/B sides and exploring leads are chosen).
- :func:`compare` — both, plus a plain-words verdict that says when the samples are too small to
  tell (fewer than :data:`MIN_SAMPLE` leads on a side, or fewer than :data:`MIN_EVENTS` hits or
  misses on a side: the normal approximation the test rests on does not hold then).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any

#: z of a two-sided 95 % interval.
Z95 = 1.959963984540054
#: fewer leads than this on a side: too small to tell.
MIN_SAMPLE = 30
#: fewer hits (or misses) than this on a side: the z-test's normal approximation does not hold.
MIN_EVENTS = 5


def stable_unit(*parts: str) -> float:
    """A number in [0, 1) from ``parts`` that is the same on every machine, process and run
    (SHA-256 of the parts; not Python's salted ``hash``)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of the proportion ``hits / n`` (``(0.0, 1.0)`` when ``n`` is 0)."""
    if n <= 0:
        return 0.0, 1.0
    if hits < 0 or hits > n:
        raise ValueError(f"hits must be between 0 and n ({hits} of {n})")
    p = hits / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if hits == 0 else max(0.0, centre - half)
    hi = 1.0 if hits == n else min(1.0, centre + half)
    return lo, hi


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def two_proportion_z(a_hits: int, a_n: int, b_hits: int, b_n: int) -> tuple[float | None, float | None]:
    """The pooled two-proportion z statistic of ``a - b`` and its two-sided p-value; ``(None,
    None)`` when either side is empty or the pooled rate is 0 or 1 (no variance: nothing to test)."""
    if a_n <= 0 or b_n <= 0:
        return None, None
    pooled = (a_hits + b_hits) / (a_n + b_n)
    var = pooled * (1 - pooled) * (1 / a_n + 1 / b_n)
    if var <= 0:
        return None, None
    z = (a_hits / a_n - b_hits / b_n) / math.sqrt(var)
    return z, min(1.0, 2 * normal_sf(abs(z)))


@dataclass(frozen=True)
class Comparison:
    """Two hit rates compared: each with its Wilson interval, the z-test, and a verdict in words.

    ``verdict`` is one of ``too_small`` (the samples cannot tell), ``no_difference`` (p >= alpha),
    ``a_better`` / ``b_better`` (p < alpha)."""

    a_hits: int
    a_n: int
    b_hits: int
    b_n: int
    a_rate: float | None
    b_rate: float | None
    a_interval: tuple[float, float]
    b_interval: tuple[float, float]
    z: float | None
    p_value: float | None
    verdict: str
    note: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        d = asdict(self)
        d["a_interval"], d["b_interval"] = list(self.a_interval), list(self.b_interval)
        return d


def _too_small(hits: int, n: int) -> bool:
    return n < MIN_SAMPLE or hits < MIN_EVENTS or n - hits < MIN_EVENTS


def compare(a_hits: int, a_n: int, b_hits: int, b_n: int, *, alpha: float = 0.05,
            what: str = "hit rate") -> Comparison:
    """Compare the proportions ``a_hits/a_n`` and ``b_hits/b_n`` (see the module docstring)."""
    a_rate = a_hits / a_n if a_n else None
    b_rate = b_hits / b_n if b_n else None
    z, p = two_proportion_z(a_hits, a_n, b_hits, b_n)
    if _too_small(a_hits, a_n) or _too_small(b_hits, b_n):
        verdict = "too_small"
        note = (f"too few leads to tell: {a_n} on A ({a_hits} hits), {b_n} on B ({b_hits} hits); a "
                f"comparison of {what} needs at least {MIN_SAMPLE} leads and {MIN_EVENTS} hits and "
                f"{MIN_EVENTS} misses on each side")
    elif p is None or p >= alpha:
        verdict = "no_difference"
        shown = "n/a" if p is None else f"{p:.3f}"
        note = (f"no clear difference in {what} (p = {shown}): the gap could be chance at this sample "
                "size")
    else:
        assert a_rate is not None and b_rate is not None
        verdict = "a_better" if a_rate > b_rate else "b_better"
        better, worse = ("A", "B") if a_rate > b_rate else ("B", "A")
        note = (f"{better}'s {what} is higher than {worse}'s ({max(a_rate, b_rate):.1%} vs "
                f"{min(a_rate, b_rate):.1%}, p = {p:.3g})")
    return Comparison(a_hits, a_n, b_hits, b_n, a_rate, b_rate, wilson(a_hits, a_n), wilson(b_hits, b_n),
                      z, p, verdict, note)

"""Statistics of right-censored times and of fitted scaling laws.

A clustering time is *right-censored* when a run reaches the horizon T unclustered: we
only know that its time exceeds T. Averaging such times as if T were observed biases
every estimate down, so the studies use the Kaplan-Meier estimator

    S(t) = prod_{t_i <= t} (1 - d_i / n_i),

with t_i the distinct observed times, d_i the events at t_i and n_i the runs still at
risk just before t_i (censored runs leave the risk set after their censoring time; an
event and a censoring at the same time count the event first). Greenwood's formula
gives Var S(t) = S(t)^2 sum_{t_i <= t} d_i / (n_i (n_i - d_i)).

The estimate and its bands are scipy's (``scipy.stats.ecdf`` on right-censored data,
``confidence_interval`` for the bands); this module keeps them at the event times and adds
what scipy does not give: the median's confidence interval and the fits below.

The median is the least t with S(t) <= 1/2 (NaN when more than half the runs are
censored). Its confidence interval is Brookmeyer and Crowley's (Biometrics 38, 1982):
the times t at which the pointwise band of S(t) contains 1/2. S and its band decrease, so
this is the interval from the first t whose lower band is <= 1/2 to the first t whose
upper band is <= 1/2 (+inf when the upper band stays above 1/2 until the last event).
The band is linear, S +- z sd (clipped to [0, 1]), or log-log,
S^{exp(-+z sd / (S log S))}, which keeps it inside (0, 1).

``linear_fit`` is ordinary least squares (``scipy.stats.linregress``) with the standard
errors of slope and intercept; the studies fit log(median time) against log n and against
beta.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import CensoredData, ecdf, linregress

Band = Literal["linear", "log-log"]


@dataclass(frozen=True)
class KaplanMeier:
    """The Kaplan-Meier estimate at its distinct event times (ascending).

    times, at_risk n_i, events d_i, survival S(t_i) (the value on [t_i, t_{i+1})), and
    variance (Greenwood); ``count`` runs in all, ``censored`` of them censored;
    ``estimate`` is scipy's survival function (at every distinct time, censorings included)
    and ``at_events`` the indices of the event times in it.
    """

    times: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    survival: np.ndarray
    variance: np.ndarray
    count: int
    censored: int
    estimate: Any = None
    at_events: np.ndarray | None = None

    def __call__(self, t: Any) -> np.ndarray:
        """S(t) at any times (right-continuous step function, S = 1 before the first event)."""
        t = np.asarray(t, dtype=float)
        k = np.searchsorted(self.times, t, side="right")
        values = np.concatenate([[1.0], self.survival])
        return values[k]

    @property
    def censored_fraction(self) -> float:
        return self.censored / self.count

    def band(self, level: float = 0.95, kind: Band = "linear") -> tuple[np.ndarray, np.ndarray]:
        """Pointwise (lower, upper) confidence band of S at ``times`` (scipy's Greenwood
        bands: "linear", clipped to [0, 1], or "log-log")."""
        if not 0 < level < 1:
            raise ValueError(f"confidence level must lie in (0, 1), got {level!r}")
        if kind not in ("linear", "log-log"):
            raise ValueError(f"band must be 'linear' or 'log-log', got {kind!r}")
        if self.times.size == 0:
            return np.zeros(0), np.zeros(0)
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            # "undefined at some observations": where S is 0 or 1, handled below
            warnings.simplefilter("ignore", RuntimeWarning)
            interval = self.estimate.confidence_interval(level, method=kind)
        lower = interval.low.probabilities[self.at_events]
        upper = interval.high.probabilities[self.at_events]
        # where S is 0 or 1 the band is the point itself (scipy leaves NaN in log-log)
        lower = np.where(np.isnan(lower), self.survival, lower)
        upper = np.where(np.isnan(upper), self.survival, upper)
        return lower, upper

    def median(self) -> float:
        """Least t_i with S(t_i) <= 1/2 (NaN if S stays above 1/2)."""
        return _first_at_or_below(self.times, self.survival, 0.5)

    def median_interval(self, level: float = 0.95, kind: Band = "linear") -> tuple[float, float]:
        """Brookmeyer-Crowley confidence interval of the median (module docstring).

        The lower end is NaN if even the lower band stays above 1/2 (the median lies
        beyond the follow-up); the upper end is +inf if the upper band stays above 1/2.
        """
        lower_band, upper_band = self.band(level, kind)
        low = _first_at_or_below(self.times, lower_band, 0.5)
        high = _first_at_or_below(self.times, upper_band, 0.5)
        if math.isnan(high) and self.count > 0:
            high = math.inf
        return low, high


def _first_at_or_below(times: np.ndarray, values: np.ndarray, threshold: float) -> float:
    hit = np.flatnonzero(values <= threshold + 1e-12)
    return float(times[hit[0]]) if hit.size else math.nan


def kaplan_meier(durations: Any, observed: Any) -> KaplanMeier:
    """Kaplan-Meier estimate from durations (event or censoring times, >= 0) and observed
    flags (True: the event happened at that time; False: censored there)."""
    t = np.asarray(durations, dtype=float).ravel()
    e = np.asarray(observed, dtype=bool).ravel()
    if t.shape != e.shape:
        raise ValueError(f"durations and observed must have the same size, got {t.size}, {e.size}")
    if t.size == 0:
        raise ValueError("Kaplan-Meier needs at least one duration")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("durations must be finite and >= 0 (censored runs: the censoring time)")
    event_times = np.unique(t[e])
    events = np.array([np.count_nonzero(e & (t == u)) for u in event_times], dtype=np.int64)
    at_risk = np.array([np.count_nonzero(t >= u) for u in event_times], dtype=np.int64)
    estimate = ecdf(CensoredData.right_censored(t, ~e)).sf
    at_events = np.searchsorted(estimate.quantiles, event_times)
    survival = estimate.probabilities[at_events]
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(events / (at_risk * (at_risk - events)))
        variance = np.where(survival > 0, survival**2 * greenwood, 0.0)
    return KaplanMeier(event_times, at_risk, events, survival, variance, int(t.size),
                       int(np.count_nonzero(~e)), estimate, at_events)


def censored_times(times: Any, horizon: float) -> KaplanMeier:
    """Kaplan-Meier of clustering times where NaN means "not clustered by ``horizon``"."""
    t = np.asarray(times, dtype=float).ravel()
    observed = np.isfinite(t)
    if np.any(t[observed] > horizon * (1 + 1e-12)):
        raise ValueError(f"observed times exceed the horizon {horizon}")
    return kaplan_meier(np.where(observed, t, horizon), observed)


@dataclass(frozen=True)
class MedianSummary:
    """The median of censored times with its confidence interval and the censored fraction."""

    median: float
    low: float
    high: float
    censored_fraction: float
    count: int


def summarize_times(times: Any, horizon: float, level: float = 0.95,
                    band: Band = "linear") -> MedianSummary:
    """Median, Brookmeyer-Crowley interval and censored fraction of clustering times (NaN =
    censored at ``horizon``)."""
    km = censored_times(times, horizon)
    low, high = km.median_interval(level, band)
    return MedianSummary(km.median(), low, high, km.censored_fraction, km.count)


def summarize_over_seeds(times: np.ndarray, horizon: float, level: float = 0.95,
                         band: Band = "linear") -> np.ndarray:
    """(..., 4): median, low, high and censored fraction (``summarize_times``) over the first
    axis (seeds) of ``times``, at every index of the others."""
    out = np.empty((*times.shape[1:], 4))
    for index in np.ndindex(times.shape[1:]):
        s = summarize_times(times[(slice(None), *index)], horizon, level, band)
        out[index] = (s.median, s.low, s.high, s.censored_fraction)
    return out


# -- least squares -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """y = intercept + slope x by least squares; standard errors NaN with fewer than 3 points."""

    slope: float
    intercept: float
    slope_se: float
    intercept_se: float
    points: int


def linear_fit(x: Any, y: Any) -> Fit:
    """Ordinary least squares of y on x over the finite pairs; NaN fit with < 2 of them.

    s^2 = RSS / (m - 2), se(slope) = s / sqrt(Sxx), se(intercept) = s sqrt(1/m + mean(x)^2/Sxx).
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same size, got {x.size} and {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    m = x.size
    nan = math.nan
    if m < 2 or np.ptp(x) == 0:
        return Fit(nan, nan, nan, nan, m)
    fit = linregress(x, y)
    if m < 3:
        return Fit(float(fit.slope), float(fit.intercept), nan, nan, m)
    return Fit(float(fit.slope), float(fit.intercept), float(fit.stderr),
               float(fit.intercept_stderr), m)


def power_law_fit(x: Any, t: Any) -> Fit:
    """log t = intercept + slope log x: the exponent of t ~ x^slope."""
    x, t = np.asarray(x, dtype=float), np.asarray(t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return linear_fit(np.log(x), np.log(t))


def exponential_fit(x: Any, t: Any) -> Fit:
    """log t = intercept + slope x: the rate of t ~ e^{slope x}."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return linear_fit(x, np.log(t))

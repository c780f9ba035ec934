"""Censored-time statistics: Kaplan-Meier by hand and against scipy, the Brookmeyer-Crowley
interval's coverage on exponential times with censoring, least squares against scipy."""

import math

import numpy as np
import pytest
from scipy import stats

from experiments.statistics import (
    censored_times,
    exponential_fit,
    kaplan_meier,
    linear_fit,
    power_law_fit,
    summarize_times,
)

# durations and event flags: events at 1, 2, 3, 5, 5; censored at 2, 4, 6
DURATIONS = np.array([1, 2, 2, 3, 4, 5, 5, 6.0])
OBSERVED = np.array([1, 1, 0, 1, 0, 1, 1, 0], dtype=bool)


def test_kaplan_meier_by_hand():
    km = kaplan_meier(DURATIONS, OBSERVED)
    # risk sets 8, 7, 5, 3 (the censoring at 2 leaves after the event at 2)
    np.testing.assert_array_equal(km.times, [1, 2, 3, 5])
    np.testing.assert_array_equal(km.at_risk, [8, 7, 5, 3])
    np.testing.assert_array_equal(km.events, [1, 1, 1, 2])
    np.testing.assert_allclose(km.survival, [7 / 8, 3 / 4, 3 / 5, 1 / 5], rtol=1e-15)
    greenwood = np.cumsum([1 / (8 * 7), 1 / (7 * 6), 1 / (5 * 4), 2 / (3 * 1)])
    np.testing.assert_allclose(km.variance, km.survival**2 * greenwood, rtol=1e-14)
    assert km.variance[-1] == pytest.approx(0.04 * (1 / 56 + 1 / 42 + 1 / 20 + 2 / 3))
    assert km.median() == 5.0  # S(3) = 0.6 > 1/2 >= S(5) = 0.2
    assert km.censored == 3 and km.censored_fraction == 3 / 8
    np.testing.assert_allclose(km([0.5, 1, 2.5, 4.9, 5, 10]),
                               [1, 7 / 8, 3 / 4, 3 / 5, 1 / 5, 1 / 5])


def test_median_interval_by_hand():
    km = kaplan_meier(DURATIONS, OBSERVED)
    z = stats.norm.ppf(0.975)
    lower = km.survival - z * np.sqrt(km.variance)
    upper = km.survival + z * np.sqrt(km.variance)
    # S -+ 1.96 sd: (0.646, 0.450, 0.244, 0) below and (1, 1, 0.956, 0.541) above (clipped),
    # so the lower band reaches 1/2 at t = 2 and the upper band never does
    np.testing.assert_allclose(np.clip(lower, 0, 1), [0.6458277, 0.4499430, 0.2439549, 0],
                               atol=1e-7)
    np.testing.assert_allclose(np.clip(upper, 0, 1), [1, 1, 0.9560451, 0.5413565], atol=1e-7)
    assert km.median_interval(0.95, "linear") == (2.0, math.inf)
    # no censoring: S = 7/8, 5/8, 1/2, 3/8, 1/8, 0; the 50% band reaches 1/2 at 3 and 4
    km = kaplan_meier(DURATIONS, np.ones(8, dtype=bool))
    low, high = km.median_interval(0.5, "linear")
    assert km.median() == 3.0 and (low, high) == (3.0, 4.0)  # S(3) = 1/2 exactly


@pytest.mark.filterwarnings("ignore:The confidence interval is undefined")
def test_kaplan_meier_matches_scipy_ecdf(rng):
    t = np.round(rng.exponential(2.0, 200), 1)  # rounded: many ties between events/censorings
    observed = rng.random(200) < 0.7
    km = kaplan_meier(t, observed)
    res = stats.ecdf(stats.CensoredData.right_censored(t, ~observed))
    np.testing.assert_allclose(km(res.sf.quantiles), res.sf.probabilities, rtol=1e-12)
    for kind, method in (("linear", "linear"), ("log-log", "log-log")):
        low, high = km.band(0.9, kind)
        ci = res.sf.confidence_interval(0.9, method=method)
        keep = (km.survival > 0) & (km.survival < 1)
        np.testing.assert_allclose(low[keep], ci.low.evaluate(km.times)[keep], rtol=1e-9)
        np.testing.assert_allclose(high[keep], ci.high.evaluate(km.times)[keep], rtol=1e-9)


def test_exponential_times_with_censoring(rng):
    # T ~ Exp(rate), censored at C ~ Exp(rate/2) and at the horizon 1.5: the true median
    # ln2/rate = 0.693 lies inside the 95% interval about 95% of the time, while the
    # censored times averaged as if observed are far too small.
    rate, horizon, trials, m = 1.0, 1.5, 300, 150
    true_median = math.log(2) / rate
    covered, naive = 0, []
    for _ in range(trials):
        t = rng.exponential(1 / rate, m)
        c = np.minimum(rng.exponential(2 / rate, m), horizon)
        km = kaplan_meier(np.minimum(t, c), t <= c)
        low, high = km.median_interval(0.95)
        covered += low <= true_median <= high
        naive.append(np.median(np.minimum(t, c)))
        np.testing.assert_allclose(km(true_median), 0.5, atol=0.2)
    assert 0.91 <= covered / trials <= 0.985
    assert np.mean(naive) < 0.85 * true_median


def test_censored_times_and_summary():
    times = np.array([1.0, 2.0, np.nan, 4.0, np.nan, np.nan, np.nan])
    km = censored_times(times, horizon=10.0)
    assert km.censored == 4
    assert math.isnan(km.median())  # S stays at 4/7 > 1/2
    s = summarize_times(times, horizon=10.0)
    assert math.isnan(s.median) and s.censored_fraction == pytest.approx(4 / 7)
    assert s.high == math.inf
    with pytest.raises(ValueError, match="horizon"):
        censored_times([1.0, 11.0], horizon=10.0)


def test_uncensored_median_is_the_lower_sample_median(rng):
    t = rng.exponential(1.0, 41)
    s = summarize_times(t, horizon=1e9)
    assert s.median == np.sort(t)[20] and s.censored_fraction == 0
    assert s.low <= s.median <= s.high


def test_bad_inputs():
    with pytest.raises(ValueError, match="same size"):
        kaplan_meier([1.0, 2.0], [True])
    with pytest.raises(ValueError, match="finite"):
        kaplan_meier([1.0, np.inf], [True, True])
    with pytest.raises(ValueError, match="level"):
        kaplan_meier([1.0], [True]).median_interval(1.5)


def test_linear_fit_matches_linregress(rng):
    x = rng.uniform(0, 5, 30)
    y = 1.5 - 0.7 * x + rng.normal(0, 0.3, 30)
    fit = linear_fit(x, y)
    ref = stats.linregress(x, y)
    assert fit.slope == pytest.approx(ref.slope, rel=1e-12)
    assert fit.intercept == pytest.approx(ref.intercept, rel=1e-12)
    assert fit.slope_se == pytest.approx(ref.stderr, rel=1e-10)
    assert fit.intercept_se == pytest.approx(ref.intercept_stderr, rel=1e-10)


def test_scaling_fits_recover_exponents(rng):
    n = np.array([8, 16, 32, 64, 128.0])
    noise = np.exp(rng.normal(0, 1e-3, n.size))
    assert power_law_fit(n, 3.0 * n**1.5 * noise).slope == pytest.approx(1.5, abs=0.01)
    beta = np.linspace(0.5, 4, 6)
    assert exponential_fit(beta, 2.0 * np.exp(0.8 * beta)).slope == pytest.approx(0.8, rel=1e-12)
    short = linear_fit([1.0, 2.0, np.nan], [1.0, 3.0, 5.0])
    assert short.points == 2 and short.slope == pytest.approx(2.0) and math.isnan(short.slope_se)

"""Betting confidence sequences: time-uniform validity, monotonicity, consistency, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import beta, norm

from benchmarks.confidence_sequences import plugin_log_capital, plugin_running_lower_bound
from service.core import betting

ALPHA = 0.01
RUNS = 2000


def _limit(alpha: float, runs: int) -> float:
    """alpha + 3 standard errors: a miscoverage above this is a bug, not bad luck."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def _successes(p: float, runs: int, horizon: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.random((runs, horizon)) < p, axis=1, dtype=np.int64)


# --- time-uniform validity (Monte Carlo) ------------------------------------------------------


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_mixture_bound_ever_exceeds_p_at_most_alpha_of_the_time(p: float) -> None:
    """The running bound after every sample: P[exists t: L_t > p] <= alpha."""
    horizon = 500
    successes = _successes(p, RUNS, horizon, seed=1)
    trials = np.arange(1, horizon + 1)
    bound = betting.running_lower_bound(successes, trials, ALPHA)
    assert np.mean(bound[:, -1] > p) <= _limit(ALPHA, RUNS)


@pytest.mark.parametrize("p", [0.5, 0.999])
def test_mixture_test_at_the_true_p_is_valid_over_long_horizons(p: float) -> None:
    """Rejecting the true p at any of 10,000 looks happens at most alpha of the time."""
    horizon = 10_000
    successes = _successes(p, RUNS, horizon, seed=2)
    needed = betting.rejection_thresholds(p, ALPHA, horizon)
    assert np.mean(np.any(successes >= needed[1:], axis=1)) <= _limit(ALPHA, RUNS)


def test_the_check_catches_a_fixed_n_bound_re_checked_after_every_sample() -> None:
    """Clopper-Pearson at alpha looked at after every sample (trap 2) fails the same check."""
    p, horizon = 0.5, 500
    successes = _successes(p, RUNS, horizon, seed=1)
    trials = np.broadcast_to(np.arange(1, horizon + 1), successes.shape)
    keys, inverse = np.unique(trials * (horizon + 1) + successes, return_inverse=True)
    t, s = keys // (horizon + 1), keys % (horizon + 1)
    with np.errstate(invalid="ignore"):
        cp = np.where(s > 0, beta.ppf(ALPHA, np.maximum(s, 1), t - s + 1), 0.0)
    ever = np.any(cp[inverse.reshape(successes.shape)] > p, axis=1)
    assert np.mean(ever) > _limit(ALPHA, RUNS)


@pytest.mark.parametrize("p", [0.5, 0.95])
def test_plugin_bound_ever_exceeds_p_at_most_alpha_of_the_time(p: float) -> None:
    rng = np.random.default_rng(3)
    votes = (rng.random((RUNS, 250)) < p).astype(np.float64)
    bound = plugin_running_lower_bound(votes, ALPHA)
    assert np.mean(bound > p) <= _limit(ALPHA, RUNS)


@pytest.mark.parametrize("p", [0.5, 0.99])
def test_plugin_test_at_the_true_p_is_valid_over_long_horizons(p: float) -> None:
    horizon = 3000
    rng = np.random.default_rng(4)
    votes = (rng.random((RUNS, horizon)) < p).astype(np.float64)
    capital = plugin_log_capital(votes, p, ALPHA)
    rejected = np.any(capital >= betting.threshold(ALPHA, np.arange(1, horizon + 1)), axis=1)
    assert np.mean(rejected) <= _limit(ALPHA, RUNS)


# --- monotonicity -----------------------------------------------------------------------------


def test_mixture_capital_is_nonincreasing_in_m() -> None:
    rng = np.random.default_rng(5)
    trials = rng.integers(1, 5000, size=200)
    successes = rng.integers(0, trials + 1)
    m = np.linspace(1e-6, 1, 4001)
    capital = betting.mixture_log_capital(successes[:, None], trials[:, None], m[None, :])
    assert np.all(np.diff(capital, axis=1) <= 1e-12 * (1 + np.abs(capital[:, 1:])))


def test_plugin_capital_is_nonincreasing_in_m() -> None:
    rng = np.random.default_rng(6)
    votes = (rng.random((20, 500)) < 0.8).astype(np.float64)
    m = np.linspace(1e-4, 1, 801)
    capital = plugin_log_capital(votes[:, None, :], m[None, :, None], ALPHA)
    assert np.all(np.diff(capital, axis=1) <= 1e-9 * (1 + np.abs(capital[:, 1:])))


def test_one_count_at_a_time_gives_the_bound_of_a_batch() -> None:
    """A certifier's look asks for one bound (searched 4 bits a round), a simulation for many
    (bisected): the same largest rejected multiple of 2**-40, rejected indeed."""
    rng = np.random.default_rng(11)
    trials = rng.integers(1, 20_000, size=400)
    successes = np.round(trials * rng.uniform(0.2, 1.0, size=400)).astype(np.int64)
    batch = betting.lower_bound(successes, trials, ALPHA)
    pairs = zip(successes, trials, strict=True)
    alone = np.array([betting.lower_bound(s, t, ALPHA) for s, t in pairs])
    assert np.array_equal(alone, batch) and np.all(batch > 0)
    assert np.all(betting.rejects(successes, trials, batch, ALPHA))
    assert not np.any(betting.rejects(successes, trials, batch + 2.0**-40, ALPHA))


def test_running_bound_never_decreases_and_dominates_the_point_bound() -> None:
    successes = _successes(0.97, 10, 1500, seed=7)
    trials = np.arange(1, 1501)
    point = betting.lower_bound(successes, trials, ALPHA)
    running = betting.running_lower_bound(successes, trials, ALPHA)
    assert np.all(np.diff(running, axis=1) >= 0)
    assert np.all(running >= point)
    assert np.array_equal(running[:, -1], point.max(axis=1))
    assert np.any(np.diff(point, axis=1) < 0)  # the point bound does fall: the max matters


def test_reading_only_some_times_gives_a_lower_bound() -> None:
    successes = _successes(0.95, 10, 2048, seed=8)
    looks = np.array([32, 64, 128, 256, 512, 1024, 2048])
    every = betting.running_lower_bound(successes, np.arange(1, 2049), ALPHA)
    at_looks = betting.running_lower_bound(successes[:, looks - 1], looks, ALPHA)
    assert np.all(at_looks <= every[:, looks - 1])


# --- where the bound sits ---------------------------------------------------------------------


def test_bound_is_below_the_empirical_mean_and_the_upper_bound_above() -> None:
    t = np.repeat(np.arange(1, 151), np.arange(2, 152))  # every (S, t) with 0 <= S <= t <= 150
    s = np.concatenate([np.arange(k + 1) for k in range(1, 151)])
    lower = betting.lower_bound(s, t, ALPHA)
    upper = betting.upper_bound(s, t, ALPHA)
    assert np.all(lower <= s / t)
    assert np.all(upper >= s / t)
    assert np.all(lower[s == 0] == 0.0)
    assert np.all(upper[s == t] == 1.0)


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05])
def test_all_successes_never_beat_the_best_possible_fixed_n_bound(alpha: float) -> None:
    """After t successes in t trials no valid bound exceeds alpha**(1/t) (P_p[all] = p^t)."""
    t = np.arange(1, 3001)
    assert np.all(betting.lower_bound(t, t, alpha) <= alpha ** (1 / t))


def test_certifying_half_a_sigma_squared_needs_few_more_votes_than_fixed_n() -> None:
    """r = 0.5 at sigma 0.25 with every vote correct: fixed-n CP needs 301 votes, the
    doubling-look alpha-spending plan 512; the mixture should stop within 20% of 301."""
    m0 = float(norm.cdf(2.0))
    t = np.arange(1, 1001)
    first = int(t[np.argmax(betting.lower_bound(t, t, 0.001) >= m0)])
    assert 301 <= first <= 360


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99, 0.999])
def test_bound_converges_to_p(p: float) -> None:
    trials = np.array([10**4, 10**5, 10**6, 10**7])
    bound = betting.lower_bound(np.round(p * trials).astype(np.int64), trials, ALPHA)
    assert np.all(np.diff(bound) > 0)
    assert np.all(bound <= p)
    assert p - bound[-1] < 1.5e-3


def test_plugin_bound_converges_to_p() -> None:
    rng = np.random.default_rng(9)
    votes = (rng.random(200_000) < 0.9).astype(np.float64)
    bound = float(plugin_running_lower_bound(votes, ALPHA))
    assert 0.9 - 0.005 < bound <= votes.mean()


# --- the pieces agree -------------------------------------------------------------------------


def test_thresholds_are_exactly_the_mixture_test() -> None:
    horizon = 250
    t = np.repeat(np.arange(horizon + 1), np.arange(1, horizon + 2))
    s = np.concatenate([np.arange(k + 1) for k in range(horizon + 1)])
    bound = betting.lower_bound(s, t, ALPHA)
    for m in (0.3, 0.841345, 0.95, 0.97725):
        needed = betting.rejection_thresholds(m, ALPHA, horizon)
        assert np.array_equal(betting.rejects(s, t, m, ALPHA), s >= needed[t])
        # the bisection's bound reaches m only where the test rejects m (it never overshoots)
        assert np.all(s[bound >= m] >= needed[t[bound >= m]])
        assert np.any(bound >= m)


def test_bound_is_the_last_rejected_grid_point() -> None:
    successes = np.array([5, 90, 990, 1000, 4000])
    trials = np.array([10, 100, 1000, 1000, 5000])
    bound = betting.lower_bound(successes, trials, ALPHA)
    assert np.all(betting.rejects(successes, trials, bound, ALPHA))
    assert not np.any(betting.rejects(successes, trials, bound + 2.0**-40, ALPHA))


def test_plugin_bound_is_the_last_rejected_grid_point() -> None:
    rng = np.random.default_rng(10)
    votes = (rng.random((30, 400)) < 0.9).astype(np.float64)
    bound = plugin_running_lower_bound(votes, ALPHA)
    limit = betting.threshold(ALPHA, np.arange(1, 401))

    def ever(m: np.ndarray) -> np.ndarray:
        return np.any(plugin_log_capital(votes, m[:, None], ALPHA) >= limit, axis=1)

    assert np.all(ever(bound))
    assert not np.any(ever(bound + 2.0**-40))


# --- inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("successes", "trials"), [(-1, 5), (6, 5), (1.5, 5)])
def test_impossible_counts_are_refused(successes: float, trials: int) -> None:
    with pytest.raises(ValueError):
        betting.lower_bound(successes, trials, ALPHA)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5])
def test_alpha_outside_the_unit_interval_is_refused(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        betting.lower_bound(3, 5, alpha)


@pytest.mark.parametrize("m", [0.0, -0.1, 1.5])
def test_m_outside_zero_one_is_refused(m: float) -> None:
    with pytest.raises(ValueError, match="m must"):
        betting.mixture_log_capital(3, 5, m)
    with pytest.raises(ValueError, match="m must"):
        plugin_log_capital(np.ones(5), m, ALPHA)


@pytest.mark.parametrize(
    ("bets", "weights"), [((), None), ((0.5, 1.0), None), ((0.5,), (0.5,)), ((0.2, 0.5), (1.0,))]
)
def test_bad_bet_grids_are_refused(
    bets: tuple[float, ...], weights: tuple[float, ...] | None
) -> None:
    with pytest.raises(ValueError):
        betting.mixture_log_capital(3, 5, 0.5, bets, weights)


def test_the_confidence_sequence_benchmark_builds_its_options() -> None:
    """Its defaults come from the service's (the first look once became optional there)."""
    from benchmarks import confidence_sequences

    with pytest.raises(SystemExit) as exited:
        confidence_sequences.main(["--help"])
    assert exited.value.code == 0
    assert confidence_sequences.FIRST_LOOK == 32

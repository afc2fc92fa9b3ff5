import itertools
import math

import pytest
from scipy.stats import beta, norm

from service.core import smoothing


@pytest.mark.parametrize(
    ("n_a", "n", "alpha"),
    [
        (n_a, n, alpha)
        for n, alpha in itertools.product([1, 10, 100, 1000, 100_000], [0.001, 0.01, 0.05])
        for n_a in sorted({1, n // 3, n // 2, n - 1, n} - {0})
    ],
)
def test_lower_bound_is_the_beta_quantile(n_a: int, n: int, alpha: float) -> None:
    expected = beta.ppf(alpha, n_a, n - n_a + 1)
    assert smoothing.lower_confidence_bound(n_a, n, alpha) == pytest.approx(expected, rel=1e-12)


def test_lower_bound_is_zero_without_successes() -> None:
    assert smoothing.lower_confidence_bound(0, 50, 0.001) == 0.0


@pytest.mark.parametrize(("n_a", "n", "alpha"), [(-1, 10, 0.1), (11, 10, 0.1), (1, 0, 0.1)])
def test_lower_bound_rejects_impossible_counts(n_a: int, n: int, alpha: float) -> None:
    with pytest.raises(ValueError):
        smoothing.lower_confidence_bound(n_a, n, alpha)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1])
def test_lower_bound_rejects_alpha_outside_unit_interval(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        smoothing.lower_confidence_bound(5, 10, alpha)


@pytest.mark.parametrize("sigma", [0.12, 0.25, 0.5, 1.0, 0.3333])
def test_radius_never_exceeds_sigma_times_inverse_normal(sigma: float) -> None:
    for n in (100, 1000, 10_000):
        for n_a in range(n // 2, n + 1, max(1, n // 97)):
            result = smoothing.certify(0, {0: n_a, 1: n - n_a}, n, sigma, 0.001)
            if not result.abstained:
                exact = sigma * norm.ppf(result.p_lower)
                assert result.radius <= exact
                assert exact - result.radius < 1e-6 + 1e-12


def test_abstains_exactly_when_p_lower_is_below_one_half() -> None:
    n, alpha = 1000, 0.001
    for n_a in range(450, 600):
        result = smoothing.certify(3, {3: n_a}, n, 0.25, alpha)
        p_lower = beta.ppf(alpha, n_a, n - n_a + 1)
        assert result.abstained == (p_lower < 0.5)
        assert (result.label is None) == result.abstained
        if result.abstained:
            assert result.radius == 0.0


@pytest.mark.parametrize(("n", "ceiling"), [(100, 1.50), (1000, 2.46), (10_000, 3.20)])
def test_all_correct_ceiling_matches_the_reference(n: int, ceiling: float) -> None:
    radius = smoothing.max_certifiable_radius(n, 0.001, sigma=1.0)
    assert round(radius, 2) == ceiling


def test_nothing_certifies_below_ten_samples() -> None:
    assert smoothing.max_certifiable_radius(9, 0.001, 1.0) == 0.0
    assert smoothing.max_certifiable_radius(10, 0.001, 1.0) > 0.0


def test_missing_votes_count_against_the_candidate() -> None:
    full = smoothing.certify("cat", {"cat": 95, "dog": 5}, 100, 0.25, 0.001)
    with_failures = smoothing.certify("cat", {"cat": 90, "dog": 5}, 100, 0.25, 0.001)
    assert with_failures.n_a == 90
    assert with_failures.radius < full.radius


def test_counts_above_n_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to at most"):
        smoothing.certify(0, {0: 60, 1: 50}, 100, 0.25, 0.001)


def test_no_candidate_abstains() -> None:
    assert smoothing.certify(None, {0: 100}, 100, 0.25, 0.001).abstained


def test_predict_abstains_on_510_vs_490() -> None:
    result = smoothing.predict({"a": 510, "b": 490}, alpha=0.001)
    assert result.abstained and result.label is None
    assert result.p_value > 0.001


def test_predict_returns_a_clear_winner() -> None:
    result = smoothing.predict({"a": 600, "b": 400, "c": 1}, alpha=0.001)
    assert not result.abstained and result.label == "a"
    assert result.p_value < 0.001


def test_predict_on_no_votes_abstains() -> None:
    assert smoothing.predict({}, 0.01).abstained


def test_ties_break_by_label_not_by_insertion_order() -> None:
    assert smoothing.select_candidate({"dog": 5, "cat": 5}) == "cat"
    assert smoothing.select_candidate({"cat": 5, "dog": 5}) == "cat"
    assert smoothing.select_candidate({7: 3, 2: 3, 9: 1}) == 2
    assert smoothing.select_candidate({}) is None


@pytest.mark.parametrize("value", [0.1 + 0.2, 1.0000005, 2.4599999999, 0.3, 1e-9, 3.0])
def test_round_down_never_rounds_up(value: float) -> None:
    rounded = smoothing.round_down(value)
    assert rounded <= value
    assert value - rounded < 1e-6 + 1e-15
    assert math.isclose(rounded * 1e6, round(rounded * 1e6), abs_tol=1e-6)

"""Randomized-smoothing statistics: pure functions from vote counts to certificates.

No torch, no I/O. Everything here follows Cohen, Rosenfeld & Kolter (ICML 2019), "Certified
Adversarial Robustness via Randomized Smoothing", section 3.2.

Guarantee (CERTIFY). Let f be the base classifier (denoiser + classifier, including anything done
to a denoised copy such as resizing), g(x) = argmax_c P[f(x + d) = c] with d ~ N(0, sigma^2 I) in
the [0, 1] pixel space of the decoded image. If the candidate class was chosen *without* looking at
the estimation samples (from disjoint selection samples, or from the classifier's answer on the
clean image), and ``n_a`` of ``n`` fresh i.i.d. estimation samples voted for it, then with
probability at least 1 - alpha over the noise, whenever :func:`certify` returns a class c with
radius R, g(x) = c and g(x + e) = c for every ||e||_2 < R.

Guarantee (PREDICT). With probability at least 1 - alpha, :func:`predict` returns either g(x) or
abstains.

Conservatism: a copy whose query failed counts against the candidate (it is part of ``n`` but not
of ``n_a``); radii are rounded *down* to :data:`RADIUS_DECIMALS` decimals, which also absorbs the
float error of the quantile functions (~1e-15 relative).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from scipy.special import ndtr
from scipy.stats import beta, betabinom, binomtest, norm

from service.core import betting

__all__ = [
    "RADIUS_DECIMALS",
    "CertifyResult",
    "PredictResult",
    "SequentialBound",
    "SequentialPlan",
    "SequentialStep",
    "certify",
    "chance_to_certify",
    "lower_confidence_bound",
    "max_certifiable_radius",
    "predict",
    "radius_from_p_lower",
    "ranked",
    "round_down",
    "select_candidate",
    "sequential_look",
    "upper_confidence_bound",
]

Label = TypeVar("Label", bound=Hashable)

RADIUS_DECIMALS = 6


def round_down(value: float, decimals: int = RADIUS_DECIMALS) -> float:
    """Largest float with ``decimals`` decimals that is <= ``value`` (never rounds up)."""
    scale = 10**decimals
    rounded = math.floor(value * scale) / scale
    # value * scale and the division can each round up by half an ulp; step below if they did.
    while rounded > value:
        rounded = math.nextafter(rounded, -math.inf)
    return rounded


def lower_confidence_bound(n_a: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion.

    Equals the alpha quantile of Beta(n_a, n - n_a + 1); 0 when ``n_a == 0``.
    """
    _check_counts(n_a, n)
    _check_alpha(alpha)
    if n_a == 0:
        return 0.0
    return float(beta.ppf(alpha, n_a, n - n_a + 1))


def upper_confidence_bound(n_a: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson upper bound: the 1 - alpha quantile of
    Beta(n_a + 1, n - n_a); 1 when ``n_a == n``."""
    _check_counts(n_a, n)
    _check_alpha(alpha)
    if n_a == n:
        return 1.0
    return float(beta.ppf(1 - alpha, n_a + 1, n - n_a))


def radius_from_p_lower(p_lower: float, sigma: float) -> float:
    """sigma * Phi^-1(p_lower), rounded down; only meaningful for p_lower >= 0.5."""
    if p_lower < 0.5:
        raise ValueError(f"no radius below p_lower = 0.5 (got {p_lower})")
    return round_down(max(0.0, sigma * float(norm.ppf(p_lower))))


def max_certifiable_radius(n: int, alpha: float, sigma: float) -> float:
    """The radius certified when all ``n`` estimation samples vote for the candidate."""
    p_lower = lower_confidence_bound(n, n, alpha)
    return radius_from_p_lower(p_lower, sigma) if p_lower >= 0.5 else 0.0


def ranked(counts: Mapping[Label, int]) -> list[tuple[Label, int]]:
    """Labels by descending count; ties broken deterministically by the label's order.

    Labels of one certification are all ints (local models) or all strings (vendor keys).
    """
    return sorted(
        ((label, count) for label, count in counts.items() if count > 0),
        key=lambda item: (-item[1], item[0]),
    )


def select_candidate(selection_counts: Mapping[Label, int]) -> Label | None:
    """The most frequent label among the selection samples, or None when there were none."""
    top = ranked(selection_counts)
    return top[0][0] if top else None


@dataclass(frozen=True, slots=True)
class CertifyResult:
    """Outcome of CERTIFY. ``label`` is None when abstaining."""

    label: Hashable | None
    candidate: Hashable | None
    abstained: bool
    radius: float
    p_lower: float
    n_a: int
    n: int
    alpha: float
    sigma: float
    # Where p_lower was computed — (successes, trials) of the look that gave it — so that a
    # reader can recompute it; the current counts unless an earlier look of a betting plan did.
    bound_at: tuple[int, int] | None = None

    @property
    def bound_counts(self) -> tuple[int, int]:
        return self.bound_at or (self.n_a, self.n)


def certify(
    candidate: Label | None,
    estimation_counts: Mapping[Label, int],
    n: int,
    sigma: float,
    alpha: float,
) -> CertifyResult:
    """CERTIFY from a candidate chosen independently of ``estimation_counts``.

    ``n`` is the number of estimation samples drawn. Counts may sum to less than ``n``: the
    difference (failed queries, copies with no answer) counts against the candidate.
    """
    n_a = _candidate_count(candidate, estimation_counts, n, sigma)
    p_lower = lower_confidence_bound(n_a, n, alpha)
    return _certificate(candidate, p_lower, n_a, n, alpha, sigma)


def _candidate_count(
    candidate: Label | None, counts: Mapping[Label, int], n: int, sigma: float
) -> int:
    """n_a, after checking sigma and that the counts fit in ``n`` samples."""
    if sigma <= 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a positive number (got {sigma})")
    if any(c < 0 for c in counts.values()) or sum(counts.values()) > n:
        raise ValueError(f"estimation counts must be >= 0 and sum to at most n = {n}")
    return int(counts.get(candidate, 0)) if candidate is not None else 0


def _certificate(
    candidate: Label | None, p_lower: float, n_a: int, n: int, alpha: float, sigma: float
) -> CertifyResult:
    """The certificate of a valid lower bound ``p_lower`` on p_A: abstain below 1/2."""
    if candidate is None or p_lower < 0.5:
        return CertifyResult(None, candidate, True, 0.0, p_lower, n_a, n, alpha, sigma)
    radius = radius_from_p_lower(p_lower, sigma)
    return CertifyResult(candidate, candidate, False, radius, p_lower, n_a, n, alpha, sigma)


@dataclass(frozen=True, slots=True)
class PredictResult:
    """Outcome of PREDICT. ``label`` is None when abstaining."""

    label: Hashable | None
    abstained: bool
    p_value: float
    n: int
    alpha: float


def predict(counts: Mapping[Label, int], alpha: float, failed: int = 0) -> PredictResult:
    """PREDICT: two-sided exact binomial test of the top two counts at 1/2; abstain if p > alpha.

    ``failed`` copies (queries that failed for good) count for the runner-up, against the top
    class, as they count against the candidate in CERTIFY (rule 4)."""
    _check_alpha(alpha)
    top = ranked(counts)
    n = sum(counts.values()) + failed
    if not top:
        return PredictResult(None, True, 1.0, n, alpha)
    n1 = top[0][1]
    n2 = (top[1][1] if len(top) > 1 else 0) + failed
    p_value = float(binomtest(n1, n1 + n2, 0.5).pvalue)
    if p_value > alpha:
        return PredictResult(None, True, p_value, n, alpha)
    return PredictResult(top[0][0], False, p_value, n, alpha)


def _check_counts(n_a: int, n: int) -> None:
    if n <= 0 or not 0 <= n_a <= n:
        raise ValueError(f"need 0 <= n_a <= n and n > 0 (got n_a = {n_a}, n = {n})")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1) (got {alpha})")


# --- Sequential certification ------------------------------------------------------------------
#
# Guarantee. The estimation samples are looked at only at the planned cumulative counts
# ``looks``, with one of two anytime-valid bounds (``SequentialPlan.bound``):
#
# - "cp-spending" (``SequentialPlan.doubling``: looks doubling from ``first`` up to ``max_n``).
#   At look k the Clopper-Pearson bounds are computed at alpha_k = alpha / K (K = number of
#   looks), so by the union bound all K lower bounds hold at once with probability >= 1 - alpha.
# - "betting" (``SequentialPlan.every``: a look after every chunk). The lower bound is the
#   running maximum of the betting confidence sequence of :mod:`service.core.betting` at alpha
#   itself:
#   its capital is a nonnegative supermartingale whenever m >= p_A, so by Ville's inequality the
#   chance that it *ever* rejects the true p_A is at most alpha — all looks, however many, hold
#   at once. Its capital is nonincreasing in m, so once it rejects m0 (the target's p_A) it
#   rejects every m <= m0 too, and m0 itself is a valid p_lower. The mirror sequence on the
#   failures (also at alpha) only decides when to stop (target unreachable), never what is
#   certified.
#
# Whatever rule decides to stop — target certified, target shown unreachable, target unlikely
# within the budget (a predictive chance below the plan's ``futility``), budget spent — the
# certificate comes from bounds that hold simultaneously at every look, so it is wrong with
# probability at most alpha: stopping early is not optional stopping of a fixed-n bound (trap 2)
# because the bound was never fixed-n.

SequentialBound = Literal["cp-spending", "betting"]

_TARGET_MARGIN = 1e-12  # above Phi(r / sigma): float error in the cdf cannot certify less than r
_EXACT_PREDICTIVE = 20_000  # chance_to_certify: the exact beta-binomial tail up to this many


@dataclass(frozen=True, slots=True)
class SequentialPlan:
    """Looks at cumulative sample counts ``looks`` with the anytime-valid ``bound``:
    "cp-spending" (Clopper-Pearson at ``alpha / len(looks)`` each: few looks) or "betting"
    (the betting confidence sequence at ``alpha``: as many looks as wanted)."""

    looks: tuple[int, ...]
    alpha: float
    bound: SequentialBound = "cp-spending"
    # Betting only: give up once the chance that the budget certifies the target is below this.
    # It decides when to stop, never what is certified, so it costs power, not validity.
    futility: float = 0.0

    @classmethod
    def doubling(cls, first: int, max_n: int, alpha: float) -> SequentialPlan:
        if not 1 <= first <= max_n:
            raise ValueError(f"need 1 <= first <= max_n (got {first}, {max_n})")
        _check_alpha(alpha)
        looks = []
        n = first
        while n < max_n:
            looks.append(n)
            n *= 2
        looks.append(max_n)
        return cls(tuple(looks), alpha)

    @classmethod
    def every(
        cls, unit: int, max_n: int, alpha: float, first: int | None = None, futility: float = 0.0
    ) -> SequentialPlan:
        """Betting, looking at ``first`` (default ``unit``) samples, then after every further
        ``unit`` samples, and at ``max_n``; ``futility`` as in :func:`chance_to_certify`."""
        first = unit if first is None else first
        if unit < 1 or not 1 <= first <= max_n:
            raise ValueError(
                f"need unit >= 1 and 1 <= first <= max_n (got {unit}, {first}, {max_n})"
            )
        if not 0 <= futility < 1:
            raise ValueError(f"futility must lie in [0, 1) (got {futility})")
        _check_alpha(alpha)
        return cls((*range(first, max_n, unit), max_n), alpha, "betting", futility)

    @property
    def alpha_per_look(self) -> float:
        """The level each look's bound is computed at: alpha / K for cp-spending (union bound over
        the K looks), alpha for betting (Ville's inequality covers every time at once)."""
        return self.alpha if self.bound == "betting" else self.alpha / len(self.looks)


@dataclass(frozen=True, slots=True)
class SequentialStep:
    """The state after one look: the certificate so far and whether (and why) to stop."""

    result: CertifyResult
    stop: bool
    # target_certified, target_unreachable, target_unlikely, converged, budget_exhausted
    reason: str | None


def sequential_look(
    plan: SequentialPlan,
    look: int,
    candidate: Label | None,
    counts: Mapping[Label, int],
    sigma: float,
    target_radius: float | None,
    tolerance: float,
    previous: CertifyResult | None = None,
) -> SequentialStep:
    """Evaluate look number ``look`` (0-based) on the cumulative ``counts`` of
    ``plan.looks[look]`` samples.

    Without a target the aim is the largest radius within the budget: stop once even the upper
    confidence bound of p_A could not add more than ``tolerance`` to the certified radius.

    ``previous`` is the result of the look before (None at the first). The betting bound keeps
    the running maximum of its lower bounds (valid: the sequence holds at all looks at once) and
    needs a target; cp-spending ignores ``previous`` (each look's bound stands on its own).
    """
    if plan.bound == "betting":
        return _betting_look(plan, look, candidate, counts, sigma, target_radius, previous)
    n = plan.looks[look]
    alpha = plan.alpha_per_look
    result = certify(candidate, counts, n, sigma, alpha)
    if candidate is None:
        return SequentialStep(result, True, "no_candidate")
    p_upper = upper_confidence_bound(result.n_a, n, alpha)
    best = sigma * float(norm.ppf(p_upper)) if p_upper > 0.5 else 0.0
    last = look == len(plan.looks) - 1
    if target_radius is not None:
        if not result.abstained and result.radius >= target_radius:
            return SequentialStep(result, True, "target_certified")
        if best < target_radius:  # even the true p_A cannot certify it: more samples are waste
            return SequentialStep(result, True, "target_unreachable")
    elif best - result.radius < tolerance and p_upper < 1.0:
        return SequentialStep(result, True, "converged")
    return SequentialStep(result, last, "budget_exhausted" if last else None)


def _betting_look(
    plan: SequentialPlan,
    look: int,
    candidate: Label | None,
    counts: Mapping[Label, int],
    sigma: float,
    target_radius: float | None,
    previous: CertifyResult | None,
) -> SequentialStep:
    """A look of the betting plan: certified once the sequence puts p_A above m0, a hair above
    Phi(target / sigma); unreachable once the mirror sequence puts it below m0, or once not even
    a unanimous rest of the budget could certify it."""
    if target_radius is None:
        raise ValueError("the betting plan needs a target radius (without one: cp-spending)")
    if previous is not None and previous.candidate != candidate:
        raise ValueError("the previous look certified another candidate")
    n, alpha = plan.looks[look], plan.alpha
    n_a = _candidate_count(candidate, counts, n, sigma)
    if candidate is None:
        return SequentialStep(_certificate(None, 0.0, n_a, n, alpha, sigma), True, "no_candidate")
    m0 = min(float(ndtr(target_radius / sigma)) + _TARGET_MARGIN, 1.0)  # ndtr = norm.cdf
    above, below = _betting_tests(n_a, n, alpha, m0)
    # Only values the sequence rejected (now or at an earlier look) become p_lower.
    p_lower, at = _betting_lower_bound(n_a, n, alpha), (n_a, n)
    if previous is not None and previous.p_lower > p_lower:
        p_lower, at = previous.p_lower, previous.bound_counts
    if above and m0 > p_lower:  # m0 is rejected, even where the bisection's grid point is below
        p_lower, at = m0, (n_a, n)
    result = replace(_certificate(candidate, p_lower, n_a, n, alpha, sigma), bound_at=at)
    if not result.abstained and result.radius >= target_radius:
        return SequentialStep(result, True, "target_certified")
    last = look == len(plan.looks) - 1
    budget = plan.looks[-1]  # could even a unanimous rest of the budget certify it?
    if below or (not last and not _betting_tests(n_a + budget - n, budget, alpha, m0)[0]):
        return SequentialStep(result, True, "target_unreachable")
    # Not before a unanimous stream could have certified: from a handful of votes the uniform
    # prior cannot tell p_A = 0.99 from 0.9, and giving up there lost 13% of the p_A = 0.99
    # images at r = 2 sigma.
    unlikely = n >= _fewest_unanimous(alpha, m0) and (
        chance_to_certify(n_a, n, budget, alpha, m0) < plan.futility
    )
    if not last and unlikely:
        return SequentialStep(result, True, "target_unlikely")
    return SequentialStep(result, last, "budget_exhausted" if last else None)


def chance_to_certify(n_a: int, n: int, budget: int, alpha: float, m0: float) -> float:
    """The predictive chance that the candidate's count at the budget reaches the fewest
    successes with which the betting sequence rejects p_A <= m0 there: beta-binomial, from a
    uniform prior on p_A updated with ``n_a`` of ``n``. Slightly below the chance that the
    sequence certifies by the budget (it may also cross earlier), so a rule "stop below x"
    gives up a little early rather than late. Only ever used to stop, never to certify.
    """
    need = _successes_needed(budget, alpha, m0) - n_a
    rest = budget - n
    if need <= 0:
        return 1.0
    if need > rest:
        return 0.0
    a, b = n_a + 1, n - n_a + 1
    if rest <= _EXACT_PREDICTIVE:
        return float(betabinom.sf(need - 1, rest, a, b))
    # The exact tail sums `rest` terms (0.7 s at 10^6): its normal approximation instead.
    mean = rest * a / (a + b)
    sd = math.sqrt(rest * a * b * (a + b + rest) / ((a + b) ** 2 * (a + b + 1)))
    return float(norm.sf((need - 0.5 - mean) / sd))


@functools.lru_cache(maxsize=1 << 10)
def _fewest_unanimous(alpha: float, m0: float) -> int:
    """The fewest votes, all for the candidate, with which the sequence rejects m0 (it grows
    with them: bisect); a large sentinel when m0 = 1 (never)."""
    if m0 >= 1.0:
        return 1 << 62
    hi = 1
    while not betting.rejects(hi, hi, m0, alpha):
        hi *= 2
    return _first_true(hi // 2, hi, lambda t: bool(betting.rejects(t, t, m0, alpha)))


@functools.lru_cache(maxsize=1 << 10)
def _successes_needed(budget: int, alpha: float, m0: float) -> int:
    """The fewest successes of ``budget`` with which the sequence rejects m0 (budget + 1: none)."""
    return _first_true(-1, budget + 1, lambda s: bool(betting.rejects(s, budget, m0, alpha)))


def _first_true(lo: int, hi: int, holds: Callable[[int], bool]) -> int:
    """The least x in (lo, hi] where the monotone ``holds`` is true (hi when none below is)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if holds(mid) else (mid, hi)
    return hi


# Pure functions of the counts, memoised: the bisection costs ~1 ms, and counts recur (every
# stream whose votes all go to the candidate passes through the same (n, n)).
@functools.lru_cache(maxsize=1 << 14)
def _betting_lower_bound(n_a: int, n: int, alpha: float) -> float:
    return float(betting.lower_bound(n_a, n, alpha))


@functools.lru_cache(maxsize=1 << 14)
def _betting_tests(n_a: int, n: int, alpha: float, m0: float) -> tuple[bool, bool]:
    """(the sequence rejects p_A <= m0, the mirror sequence on the failures rejects p_A >= m0).

    No finite sample can certify m0 = 1 (the capital at 1 never grows): unreachable at once.
    """
    above = bool(betting.rejects(n_a, n, m0, alpha))
    below = m0 >= 1.0 or bool(betting.rejects(n - n_a, n, 1.0 - m0, alpha))
    return above, below

"""Sequential certification: anytime-valid bounds, stop reasons, budgets."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.stats import norm

from service.core import betting, smoothing
from service.core.certifier import MAX_LOOKS, Certifier, sequential_plan
from service.core.results import LOOK_EVERY_FREE, LOOK_EVERY_PAID, Certificate, CertifyParams
from service.core.votes import InMemoryVoteStore
from service.execution.local import LocalSampler
from tests.models import clean_only_classifier, no_denoiser, threshold_classifier

SECRET = b"sequential-test-secret"
SIGMA = 0.25


def _limit(alpha: float, runs: int) -> float:
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def _simulate(
    p_a: float, target: float, alpha: float, runs: int, naive: bool,
    plan: smoothing.SequentialPlan | None = None,
) -> float:  # fmt: skip
    """Fraction of runs that certify ``target`` although the true radius is below it."""
    rng = np.random.default_rng(0)
    plan = plan or smoothing.SequentialPlan.doubling(32, 2048, alpha)
    draws = rng.random((runs, plan.looks[-1])) < p_a
    wrong = 0
    for row in draws:
        result = None
        for look, n in enumerate(plan.looks):
            n_a = int(row[:n].sum())
            counts = {"a": n_a, "b": n - n_a}
            if naive:  # the fixed-n bound re-checked after every batch: trap 2
                result = smoothing.certify("a", counts, n, SIGMA, alpha)
                stop = not result.abstained and result.radius >= target
            else:
                step = smoothing.sequential_look(
                    plan, look, "a", counts, SIGMA, target, 0.01, result
                )
                result, stop = step.result, step.stop
            if stop:
                wrong += not result.abstained and result.radius >= target
                break
    return wrong / runs


@pytest.mark.slow
def test_sequential_bounds_hold_under_optional_stopping() -> None:
    """p_A = 0.85 gives a true radius of 0.259 < target 0.27: every certificate is wrong."""
    alpha, runs = 0.05, 4000
    assert SIGMA * norm.ppf(0.85) < 0.27
    assert _simulate(0.85, 0.27, alpha, runs, naive=False) <= _limit(alpha, runs)


@pytest.mark.parametrize(("unit", "futility"), [(32, 0.0), (8, 0.01)])
@pytest.mark.slow
def test_betting_bounds_hold_when_looked_at_after_every_chunk(unit: int, futility: float) -> None:
    """The target-mode plan, each look at alpha (not alpha / K): 32 looks, and the default's
    128 looks that give up on unlikely targets. The target sits just above the true radius,
    where a fixed-n bound re-checked at 32 looks is wrong ~5% of the time (the control below:
    three times the limit)."""
    alpha, runs = 0.01, 2000
    plan = smoothing.SequentialPlan.every(unit, 1024, alpha, futility=futility)
    assert plan.bound == "betting" and plan.alpha_per_look == alpha
    target = SIGMA * float(norm.ppf(0.85)) * 1.001
    assert _simulate(0.85, target, alpha, runs, naive=False, plan=plan) <= _limit(alpha, runs)


@pytest.mark.slow
def test_the_check_catches_naive_re_checking_of_a_fixed_n_bound() -> None:
    alpha, runs = 0.05, 4000
    assert _simulate(0.85, 0.27, alpha, runs, naive=True) > _limit(alpha, runs)


def _certify(p_a: float, **params: object) -> Certificate:
    worker = LocalSampler(no_denoiser(), threshold_classifier(p_a, 0.5, SIGMA), device="cpu")
    secret = params.pop("secret", SECRET)
    store = params.pop("store", None)
    certifier = Certifier(worker, secret, store)  # type: ignore[arg-type]
    defaults: dict[str, object] = {"sigma": SIGMA, "mode": "sequential", "candidate": "clean",
                                   "n0": 0}  # fmt: skip
    return asyncio.run(
        certifier.certify(torch.full((3, 1, 1), 0.5), CertifyParams(**{**defaults, **params}))
    )


@pytest.mark.parametrize(
    ("p_a", "n", "target"),
    [
        (0.9, 1000, 1.001),  # betting, after every chunk; a target just out of reach
        (0.97, 600, None),  # no target: Clopper-Pearson alpha-spending at doubling looks
    ],
)
@pytest.mark.slow
def test_wrong_sequential_certificates_stay_within_alpha(
    p_a: float, n: int, target: float | None
) -> None:
    """Monte-Carlo validity through the whole pipeline: 2,000 sequential certifications.

    ``target`` is a multiple of the true radius: just above it, every target_certified is
    wrong, and so is a larger radius kept from an earlier look (the running maximum).
    """
    alpha, runs = 0.01, 2000
    true_radius = SIGMA * float(norm.ppf(p_a))
    target_radius = None if target is None else true_radius * target
    wrong = 0
    for run in range(runs):
        certificate = _certify(
            p_a, n=n, first_look=50, alpha=alpha, target_radius=target_radius,
            secret=SECRET + str(run).encode(),
        )  # fmt: skip
        if not certificate.abstained and (
            certificate.label != "a" or certificate.radius > true_radius
        ):
            wrong += 1
    assert wrong / runs <= _limit(alpha, runs)


def test_an_easy_image_certifies_the_target_with_few_queries() -> None:
    certificate = _certify(0.9999, n=10_000, target_radius=0.25)
    assert certificate.stop_reason == "target_certified"
    assert certificate.radius >= 0.25 and certificate.label == "a"
    assert certificate.queries.total <= 129  # the clean query + at most 4 chunks of 32
    assert certificate.savings is not None
    assert certificate.savings.fixed_n_queries == 10_100
    assert certificate.savings.queries_saved == 10_100 - certificate.queries.total


def test_an_unreachable_target_stops_early() -> None:
    certificate = _certify(0.6, n=10_000, target_radius=0.5)
    assert certificate.stop_reason == "target_unreachable"
    assert certificate.queries.total < 1_000


def test_a_target_beyond_any_count_of_the_budget_stops_at_the_first_chunk() -> None:
    certificate = _certify(1.0, n=300, target_radius=0.5)  # needs ~345 unanimous votes
    assert certificate.stop_reason == "target_unreachable"
    assert certificate.n == LOOK_EVERY_FREE  # a local model's first chunk


def test_a_borderline_image_samples_until_the_budget_cannot_decide() -> None:
    # True radius 0.32; the target 0.3 needs p_lower >= 0.885 with p_A = 0.9: no early decision
    # when the plan never gives up on a chance (futility 0).
    certificate = _certify(0.9, n=2_000, target_radius=0.3, futility=0)
    assert certificate.n > 1_000
    if certificate.stop_reason == "budget_exhausted":
        assert certificate.queries.total == 2_001 and certificate.n == 2_000
    elif certificate.stop_reason == "target_unreachable":  # the rest could not certify it
        top = certificate.top_counts[0].count
        m0 = float(norm.cdf(0.3 / SIGMA))
        assert not betting.rejects(top + 2_000 - certificate.n, 2_000, m0, certificate.alpha)
    else:
        assert certificate.stop_reason == "target_certified" and certificate.radius >= 0.3


def test_a_target_the_budget_will_hardly_reach_is_given_up_early() -> None:
    """The same borderline image with the default futility: the predictive chance of a
    certificate within the budget falls below 1% before the budget is spent."""
    certificate = _certify(0.9, n=2_000, target_radius=0.3)
    assert certificate.stop_reason == "target_unlikely"
    assert certificate.n < 2_000
    m0 = float(norm.cdf(0.3 / SIGMA))
    top = certificate.top_counts[0].count
    assert smoothing.chance_to_certify(top, certificate.n, 2_000, certificate.alpha, m0) < 0.01


def test_no_giving_up_before_a_unanimous_stream_could_have_certified() -> None:
    """One miss in the first 8 votes puts the uniform prior's chance below 1% for a target of
    2 sigma (p_A must be ~0.98), though p_A = 0.99 images miss that often: the rule waits."""
    plan = smoothing.SequentialPlan.every(8, 10_000, 0.001, futility=0.01)
    m0 = float(norm.cdf(2.0)) + 1e-12
    assert smoothing.chance_to_certify(7, 8, 10_000, 0.001, m0) < 0.01  # the control
    step = smoothing.sequential_look(plan, 0, "a", {"a": 7, "b": 1}, SIGMA, 2 * SIGMA, 0.01)
    assert step.reason != "target_unlikely"
    fewest = _fewest_unanimous(2 * SIGMA, 0.001)
    look = next(k for k, n in enumerate(plan.looks) if n >= fewest)
    n = plan.looks[look]
    counts = {"a": n - 12, "b": 12}  # a p_A well under 0.98 shows by now
    assert smoothing.chance_to_certify(n - 12, n, 10_000, 0.001, m0) < 0.01
    step = smoothing.sequential_look(plan, look, "a", counts, SIGMA, 2 * SIGMA, 0.01)
    assert step.stop and step.reason in {"target_unlikely", "target_unreachable"}


@pytest.mark.slow
def test_futility_keeps_the_certificates_of_clearly_certifiable_images() -> None:
    """p_A = 0.99 against a target needing 0.977 (r = 2 sigma): 200 streams, every one
    certified with the default futility (13% were lost when it acted from the first look)."""
    plan = smoothing.SequentialPlan.every(8, 10_000, 0.001, futility=0.01)
    rng = np.random.default_rng(3)
    certified = 0
    for _ in range(200):
        votes = np.cumsum(rng.random(10_000) < 0.99)
        result = None
        for look, n in enumerate(plan.looks):
            n_a = int(votes[n - 1])
            step = smoothing.sequential_look(
                plan, look, "a", {"a": n_a, "b": n - n_a}, SIGMA, 2 * SIGMA, 0.01, result
            )
            result = step.result
            if step.stop:
                certified += step.reason == "target_certified"
                break
    assert certified >= 196


def test_the_chance_to_certify_is_the_beta_binomial_tail_of_what_the_budget_needs() -> None:
    m0, alpha, budget = float(norm.cdf(1.0)), 0.001, 1_000
    need = next(s for s in range(budget + 1) if betting.rejects(s, budget, m0, alpha))
    assert not betting.rejects(need - 1, budget, m0, alpha)
    n_a, n = 90, 100  # needs need - 90 of the other 900 successes
    expected = stats.betabinom.sf(need - n_a - 1, budget - n, n_a + 1, n - n_a + 1)
    got = smoothing.chance_to_certify(n_a, n, budget, alpha, m0)
    assert math.isclose(got, expected, rel_tol=1e-12)
    assert smoothing.chance_to_certify(need, need, budget, alpha, m0) == 1.0
    assert smoothing.chance_to_certify(0, budget - need + 1, budget, alpha, m0) == 0.0
    # More successes at the same n: a larger chance (a negative control for the direction).
    assert smoothing.chance_to_certify(95, 100, budget, alpha, m0) > got
    # Past 20,000 samples to go, the normal approximation of the same tail.
    big = 100_000
    lo, hi = 0, big  # the fewest successes of `big` that reject m0, by bisection
    while hi - lo > 1:
        lo, hi = (
            (lo, (lo + hi) // 2)
            if betting.rejects((lo + hi) // 2, big, m0, alpha)
            else ((lo + hi) // 2, hi)
        )
    need = hi
    for n_a in (860, 870, 880):
        exact = stats.betabinom.sf(need - n_a - 1, big - 1_000, n_a + 1, 1_000 - n_a + 1)
        approx = smoothing.chance_to_certify(n_a, 1_000, big, alpha, m0)
        assert abs(approx - exact) < 0.01


def _fewest_unanimous(target: float, alpha: float) -> int:
    """The fewest votes, all for the candidate, with which the sequence certifies ``target``."""
    m0 = float(norm.cdf(target / SIGMA)) + 1e-12
    return next(t for t in range(1, 10_000) if betting.rejects(t, t, m0, alpha))


def test_a_unanimous_stream_certifies_at_the_first_look_that_can() -> None:
    fewest = _fewest_unanimous(0.25, 0.001)
    for unit in (LOOK_EVERY_PAID, LOOK_EVERY_FREE):  # every vote for the candidate
        certificate = _certify(1.0, n=10_000, target_radius=0.25, look_every=unit)
        assert certificate.stop_reason == "target_certified"
        assert certificate.n == unit * -(-fewest // unit)


def test_a_hopeless_image_stops_within_the_first_looks() -> None:
    # p_A = 0.3 for a target that needs 0.977: looks start at the first chunk, not at the ~345
    # samples a unanimous stream would need to certify it.
    certificate = _certify(0.3, n=10_000, target_radius=0.5, look_every=8)
    assert certificate.stop_reason in {"target_unreachable", "target_unlikely"}
    assert certificate.n <= 16


def test_a_plan_has_at_most_max_looks_looks() -> None:
    params = CertifyParams(sigma=SIGMA, mode="sequential", candidate="clean", n0=0, n=1_000_000,
                           target_radius=0.25, look_every=1)  # fmt: skip
    plan, unit = sequential_plan(params, (3, 32, 32))
    assert unit == 1_000_000 // MAX_LOOKS and len(plan.looks) == MAX_LOOKS
    small, unit = sequential_plan(params.model_copy(update={"n": 2_000}), (3, 32, 32))
    assert unit == 1 and len(small.looks) == 2_000  # a client's 1 stands where it fits


def test_looks_come_every_8_samples_where_queries_are_paid_and_32_where_free() -> None:
    params = CertifyParams(sigma=SIGMA, mode="sequential", candidate="clean", n0=0)
    assert params.look_every is None
    assert params.for_queries(paid=True).look_every == LOOK_EVERY_PAID == 8
    assert params.for_queries(paid=False).look_every == LOOK_EVERY_FREE == 32
    chosen = params.model_copy(update={"look_every": 100})
    assert chosen.for_queries(paid=True).look_every == 100  # a client's choice stands


def test_without_a_target_it_stops_when_the_radius_has_converged() -> None:
    certificate = _certify(0.8, n=100_000, tolerance=0.05)
    assert certificate.stop_reason == "converged"
    assert certificate.queries.total < 10_000
    upper = smoothing.upper_confidence_bound(
        certificate.top_counts[0].count, certificate.n, certificate.alpha / 13
    )
    assert SIGMA * norm.ppf(upper) - certificate.radius < 0.05 + 1e-9


def test_a_repeat_comes_from_the_store_in_the_same_order() -> None:
    store = InMemoryVoteStore()
    first = _certify(0.95, n=5_000, target_radius=0.3, store=store)
    again = _certify(0.95, n=5_000, target_radius=0.3, store=store)
    # Everything from the store, the clean-image candidate query included.
    assert again.queries.cached == again.queries.total == again.n + 1
    assert first.queries.cached == 0
    assert (again.radius, again.n, again.stop_reason) == (first.radius, first.n, first.stop_reason)


def test_looks_double_up_to_the_budget() -> None:
    plan = smoothing.SequentialPlan.doubling(32, 1000, 0.001)
    assert plan.looks == (32, 64, 128, 256, 512, 1000)
    assert plan.alpha_per_look == pytest.approx(0.001 / 6)


def test_fixed_mode_refuses_a_target() -> None:
    with pytest.raises(ValueError, match="mode='sequential'"):
        CertifyParams(target_radius=0.5)


# --- target mode: the betting confidence sequence, looked at after every chunk ----------------


def test_betting_looks_come_after_every_chunk_up_to_the_budget() -> None:
    plan = smoothing.SequentialPlan.every(32, 200, 0.001)
    assert plan.looks == (32, 64, 96, 128, 160, 192, 200)
    assert plan.bound == "betting" and plan.alpha_per_look == 0.001  # Ville: no alpha / K
    later = smoothing.SequentialPlan.every(32, 200, 0.001, first=96)
    assert later.looks == (96, 128, 160, 192, 200)
    assert smoothing.SequentialPlan.every(32, 20, 0.001, first=20).looks == (20,)
    assert smoothing.SequentialPlan.doubling(32, 200, 0.001).bound == "cp-spending"
    for unit, max_n, first in [(0, 100, None), (32, 100, 0), (32, 100, 101)]:
        with pytest.raises(ValueError, match="need"):
            smoothing.SequentialPlan.every(unit, max_n, 0.001, first)


def test_the_pipeline_bets_with_a_target_and_spends_alpha_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plans: set[smoothing.SequentialPlan] = set()
    look = smoothing.sequential_look

    def spy(plan: smoothing.SequentialPlan, *args: object) -> smoothing.SequentialStep:
        plans.add(plan)
        return look(plan, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(smoothing, "sequential_look", spy)
    certificate = _certify(0.9999, n=1000, target_radius=0.3, look_every=8)
    assert plans == {smoothing.SequentialPlan.every(8, 1000, 0.001, futility=0.01)}
    assert certificate.stop_reason == "target_certified"
    fewest = _fewest_unanimous(0.3, 0.001)  # p_A = 0.9999: every vote for "a" here
    assert certificate.n == 8 * -(-fewest // 8)  # a look every 8, not a doubling one
    plans.clear()
    certificate = _certify(0.9999, n=1000, target_radius=0.3, first_look=50, look_every=10)
    assert plans == {smoothing.SequentialPlan.every(10, 1000, 0.001, 50, futility=0.01)}
    plans.clear()
    certificate = _certify(0.8, n=1000)
    assert plans == {smoothing.SequentialPlan.doubling(32, 1000, 0.001)}
    assert certificate.n in (32, 64, 128, 256, 512, 1000)


def _replay(
    p_a: float, target: float, seed: int, plan: smoothing.SequentialPlan
) -> list[tuple[int, int, smoothing.SequentialStep]]:
    """(n_a, n, step) at every look of one simulated stream, up to the stop."""
    votes = np.random.default_rng(seed).random(plan.looks[-1]) < p_a
    steps: list[tuple[int, int, smoothing.SequentialStep]] = []
    result = None
    for look, n in enumerate(plan.looks):
        n_a = int(votes[:n].sum())
        step = smoothing.sequential_look(
            plan, look, "a", {"a": n_a, "b": n - n_a}, SIGMA, target, 0.01, result
        )
        steps.append((n_a, n, step))
        result = step.result
        if step.stop:
            break
    return steps


@pytest.mark.parametrize(
    ("p_a", "target"), [(0.999, 0.5), (0.95, 0.3), (0.9, 0.32), (0.7, 0.25), (0.5, 0.1)]
)
def test_betting_p_lower_is_the_running_maximum_of_what_the_sequence_rejected(
    p_a: float, target: float
) -> None:
    alpha = 0.001
    plan = smoothing.SequentialPlan.every(32, 1600, alpha)
    for seed in range(10):
        steps = _replay(p_a, target, seed, plan)
        n_a = np.array([s[0] for s in steps])
        n = np.array([s[1] for s in steps])
        bounds = betting.lower_bound(n_a, n, alpha)
        for k, (_, _, step) in enumerate(steps):
            result = step.result
            # never above a value that the sequence rejected at this look or an earlier one ...
            assert result.p_lower == 0 or np.any(
                betting.rejects(n_a[: k + 1], n[: k + 1], result.p_lower, alpha)
            )
            # ... and never below its running maximum
            assert result.p_lower >= bounds[: k + 1].max()
            assert result.alpha == alpha and (result.n_a, result.n) == (n_a[k], n[k])
            if result.p_lower < 0.5:
                assert result.abstained and result.label is None and result.radius == 0
            else:
                assert result.label == "a"
                assert result.radius == smoothing.radius_from_p_lower(result.p_lower, SIGMA)
            certified = not result.abstained and result.radius >= target
            assert (step.reason == "target_certified") == certified
            assert step.stop == (k == len(steps) - 1)


def test_betting_stop_reasons() -> None:
    plan = smoothing.SequentialPlan.every(32, 640, 0.001)
    m0 = float(norm.cdf(0.5 / SIGMA))

    def step(look: int, n_a: int, target: float | None = 0.5) -> smoothing.SequentialStep:
        n = plan.looks[look]
        return smoothing.sequential_look(
            plan, look, "a", {"a": n_a, "b": n - n_a}, SIGMA, target, 0.01
        )

    # every vote for the candidate: certified at the first look whose counts reject m0
    first = next(k for k, n in enumerate(plan.looks) if betting.rejects(n, n, m0, 0.001))
    assert 0 < first < len(plan.looks) - 1
    assert step(first - 1, plan.looks[first - 1]).reason is None
    certified = step(first, plan.looks[first])
    assert (certified.stop, certified.reason) == (True, "target_certified")
    assert certified.result.radius >= 0.5 and certified.result.p_lower >= m0
    # half the votes: p_A >= 0.977 is out of the question at once
    assert step(0, 16).reason == "target_unreachable"
    # close to m0: neither side decides before the budget
    last = len(plan.looks) - 1
    assert step(3, 126).reason is None
    assert step(last, 630) == smoothing.SequentialStep(
        step(last, 630).result, True, "budget_exhausted"
    )
    # a target that no finite sample can reach (m0 rounds to 1): unreachable at once
    assert step(0, 32, target=10 * SIGMA).reason == "target_unreachable"
    # within reach of p_A but not of this budget (640 unanimous votes cannot show p_A >= 0.992)
    assert step(0, 32, target=0.6).reason == "target_unreachable"
    larger = smoothing.SequentialPlan.every(32, 10_000, 0.001)
    assert smoothing.sequential_look(larger, 0, "a", {"a": 32}, SIGMA, 0.6, 0.01).reason is None
    no_candidate = smoothing.sequential_look(plan, 0, None, {"b": 32}, SIGMA, 0.5, 0.01)
    assert (no_candidate.reason, no_candidate.result.abstained) == ("no_candidate", True)


def test_betting_refuses_a_missing_target_and_a_changed_candidate() -> None:
    plan = smoothing.SequentialPlan.every(32, 320, 0.001)
    with pytest.raises(ValueError, match="target"):
        smoothing.sequential_look(plan, 0, "a", {"a": 32}, SIGMA, None, 0.01)
    first = smoothing.sequential_look(plan, 0, "a", {"a": 32}, SIGMA, 0.5, 0.01)
    with pytest.raises(ValueError, match="candidate"):
        smoothing.sequential_look(plan, 1, "b", {"b": 64}, SIGMA, 0.5, 0.01, first.result)


def test_a_certified_target_is_a_value_the_sequence_rejects_at_the_stop() -> None:
    for p_a, target in [(0.9999, 0.25), (0.999, 0.5), (0.95, 0.3), (0.99, 0.45)]:
        certificate = _certify(p_a, n=10_000, target_radius=target)
        assert certificate.stop_reason == "target_certified"
        n_a = next(c.count for c in certificate.top_counts if c.label == "a")
        assert betting.rejects(n_a, certificate.n, certificate.p_lower, certificate.alpha)
        assert certificate.radius == smoothing.radius_from_p_lower(certificate.p_lower, SIGMA)
        assert certificate.radius >= target and certificate.n % 8 == 0  # whole looks


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "sequential", "target_radius": 0.25, "n": 1000},
        {"mode": "fixed", "n": 200},
    ],
)
def test_a_clean_candidate_the_noisy_copies_reject_says_what_they_predict(
    params: dict[str, object],
) -> None:
    certifier = Certifier(
        LocalSampler(no_denoiser(), clean_only_classifier(), device="cpu"), SECRET
    )
    image = torch.full((3, 1, 1), 0.5)

    def certify(**fields: object) -> Certificate:
        defaults = {"sigma": SIGMA, "candidate": "clean", "n0": 0, **params, **fields}
        return asyncio.run(certifier.certify(image, CertifyParams(**defaults)))

    clean = certify()
    assert clean.candidate == "a" and clean.abstained
    (warning,) = [w for w in clean.warnings if "candidate=noisy" in w]
    assert f"(a) got 0 of the {clean.n} noisy copies and b got {clean.n}" in warning
    noisy = certify(candidate="noisy", n0=16)
    assert noisy.label == "b" and not noisy.abstained
    assert not any("candidate=noisy" in w for w in noisy.warnings)
    # the negative control: a clean label the copies agree with gets no such warning
    agreeing = _certify(0.9999, n=1000, target_radius=0.25)
    assert agreeing.label == "a" and agreeing.warnings == []

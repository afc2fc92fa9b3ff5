"""Sequential certification: anytime-valid bounds, stop reasons, budgets."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from service import smoothing
from service.pipeline import Certifier
from service.schemas import Certificate, CertifyParams
from service.votes import InMemoryVoteStore
from service.worker import LocalWorker
from tests.models import no_denoiser, threshold_classifier

SECRET = b"sequential-test-secret"
SIGMA = 0.25


def _limit(alpha: float, runs: int) -> float:
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def _simulate(p_a: float, target: float, alpha: float, runs: int, naive: bool) -> float:
    """Fraction of runs that certify ``target`` although the true radius is below it."""
    rng = np.random.default_rng(0)
    plan = smoothing.SequentialPlan.doubling(32, 2048, alpha)
    draws = rng.random((runs, plan.looks[-1])) < p_a
    wrong = 0
    for row in draws:
        for look, n in enumerate(plan.looks):
            n_a = int(row[:n].sum())
            counts = {"a": n_a, "b": n - n_a}
            if naive:  # the fixed-n bound re-checked after every batch: trap 2
                result = smoothing.certify("a", counts, n, SIGMA, alpha)
                stop = not result.abstained and result.radius >= target
            else:
                step = smoothing.sequential_look(plan, look, "a", counts, SIGMA, target, 0.01)
                result, stop = step.result, step.stop
            if stop:
                wrong += not result.abstained and result.radius >= target
                break
    return wrong / runs


def test_sequential_bounds_hold_under_optional_stopping() -> None:
    """p_A = 0.85 gives a true radius of 0.259 < target 0.27: every certificate is wrong."""
    alpha, runs = 0.05, 4000
    assert SIGMA * norm.ppf(0.85) < 0.27
    assert _simulate(0.85, 0.27, alpha, runs, naive=False) <= _limit(alpha, runs)


def test_the_check_catches_naive_re_checking_of_a_fixed_n_bound() -> None:
    alpha, runs = 0.05, 4000
    assert _simulate(0.85, 0.27, alpha, runs, naive=True) > _limit(alpha, runs)


def _certify(p_a: float, **params: object) -> Certificate:
    worker = LocalWorker(no_denoiser(), threshold_classifier(p_a, 0.5, SIGMA), device="cpu")
    secret = params.pop("secret", SECRET)
    store = params.pop("store", None)
    certifier = Certifier(worker, secret, store)  # type: ignore[arg-type]
    defaults: dict[str, object] = {"sigma": SIGMA, "mode": "sequential", "candidate": "clean",
                                   "n0": 0}  # fmt: skip
    return asyncio.run(
        certifier.certify(torch.full((3, 1, 1), 0.5), CertifyParams(**{**defaults, **params}))
    )


@pytest.mark.parametrize(("p_a", "n"), [(0.9, 1000), (0.97, 600)])
def test_wrong_sequential_certificates_stay_within_alpha(p_a: float, n: int) -> None:
    """Monte-Carlo validity through the whole pipeline: 2,000 sequential certifications."""
    alpha, runs = 0.01, 2000
    true_radius = SIGMA * float(norm.ppf(p_a))
    wrong = 0
    for run in range(runs):
        certificate = _certify(
            p_a, n=n, first_look=50, alpha=alpha, target_radius=true_radius * 0.95,
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
    assert certificate.queries.total <= 129  # the clean query + at most 4 looks of 32
    assert certificate.savings is not None
    assert certificate.savings.fixed_n_queries == 10_100
    assert certificate.savings.queries_saved == 10_100 - certificate.queries.total


def test_an_unreachable_target_stops_early() -> None:
    certificate = _certify(0.6, n=10_000, target_radius=0.5)
    assert certificate.stop_reason == "target_unreachable"
    assert certificate.queries.total < 1_000


def test_a_borderline_image_spends_the_whole_budget() -> None:
    # True radius 0.32; the target 0.3 needs p_lower >= 0.885 with p_A = 0.9.
    certificate = _certify(0.9, n=2_000, target_radius=0.3)
    assert certificate.stop_reason in ("budget_exhausted", "target_certified")
    if certificate.stop_reason == "budget_exhausted":
        assert certificate.queries.total == 2_001 and certificate.n == 2_000


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
    assert again.queries.cached == again.n and first.queries.cached == 0
    assert (again.radius, again.n, again.stop_reason) == (first.radius, first.n, first.stop_reason)


def test_looks_double_up_to_the_budget() -> None:
    plan = smoothing.SequentialPlan.doubling(32, 1000, 0.001)
    assert plan.looks == (32, 64, 128, 256, 512, 1000)
    assert plan.alpha_per_look == pytest.approx(0.001 / 6)


def test_fixed_mode_refuses_a_target() -> None:
    with pytest.raises(ValueError, match="mode='sequential'"):
        CertifyParams(target_radius=0.5)

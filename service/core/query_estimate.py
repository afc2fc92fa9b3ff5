"""How many classifier queries (and dollars) a certification will spend, before anything runs.

Why: each query to a vendor API costs money, so a buyer wants the bill before the request —
the most it can cost (which budgets and ``max_cost`` are checked against) and what it will
probably cost. For ``mode="fixed"`` both are the plan itself: the selection queries (n0 noisy
copies, or one query on the clean image) and n estimation copies. For ``mode="sequential"`` the
number of copies drawn depends on the votes, so the expectation comes from the method's own
stopping rule: the sequential plan is the one :class:`service.core.certifier.Certifier` runs
(:func:`service.core.certifier.sequential_plan`: :meth:`SequentialPlan.every` with a target
radius, :meth:`SequentialPlan.doubling` without), walked with
:func:`service.core.smoothing.sequential_look` — never a copy of the bound or of the stopping
rule — along the *expected* vote path of each p_A of a stated prior: at look k the candidate
holds ``round(p_A * looks[k])`` votes. The expectation is the prior-weighted mean of where those
paths stop.

It is an estimate, and says so: the true p_A of an image is unknown before sampling (the prior
is an assumption, not a measurement); real votes scatter around the expected path; the alpha is
the first stream's share of the ledger (later streams of the same image get less alpha and need
more copies); answers already in the vote store cost nothing. The worst case holds whatever
happens.

Pure: no I/O, no torch work (the chunk size is a function of the image's shape). Paths are
memoised on the plan and the stopping parameters (:func:`functools.lru_cache`), so a repeated
estimate is free; a plan of many looks is walked at most about 600 of them (EXACT_LOOKS).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from service.core import certifier, smoothing
from service.core.ledger import alpha_share
from service.core.results import CertifyParams

__all__ = [
    "EXACT_LOOKS",
    "LOOK_SPACING",
    "PRIOR",
    "PathEstimate",
    "QueryEstimate",
    "estimate_queries",
    "selection_queries",
    "worst_case_queries",
]

PRIOR: tuple[tuple[float, float], ...] = (
    (1.0, 0.25),
    (0.999, 0.15),
    (0.99, 0.20),
    (0.95, 0.15),
    (0.9, 0.10),
    (0.75, 0.10),
    (0.5, 0.05),
)
"""(p_A, weight) pairs: the assumed distribution of the candidate's vote share over the images a
buyer sends. Most images a classifier gets right are near-unanimous under the denoiser; some are
borderline; a few are a coin toss (a wrong or contested candidate). An assumption, stated in
every estimate, not a measurement of anyone's images."""

EXACT_LOOKS = 256
"""A betting plan looks after every chunk (up to n / first_look looks): paths are evaluated at
each of the first EXACT_LOOKS looks, then at looks at most LOOK_SPACING apart (and the last)."""
LOOK_SPACING = 0.02
"""A stop between two evaluated looks is counted at the later one: errs high by at most 2%."""

_CERTIFIED = "A"  # the candidate's label on an expected vote path
_FITTING_SHAPE = (3, 32, 32)  # stands for any image small enough for full chunks


@dataclass(frozen=True, slots=True)
class PathEstimate:
    """Where the plan stops when the candidate's vote share is ``p_a``."""

    p_a: float
    weight: float  # its weight in the prior
    queries: int  # selection + estimation queries
    usd: float
    stop_reason: str | None  # sequential_look's reason; None for the fixed plan


@dataclass(frozen=True, slots=True)
class QueryEstimate:
    worst_case_queries: int
    worst_case_usd: float
    expected_queries: float
    expected_usd: float
    paths: tuple[PathEstimate, ...]
    price_per_query: float
    bound: smoothing.SequentialBound | None  # the sequential plan's bound; None when fixed
    looks: int  # looks of the plan (1 for the fixed plan)
    chunk: int | None  # samples per chunk of the sequential plan (None when fixed)
    alpha_per_look: float | None
    summary: str


def selection_queries(params: CertifyParams) -> int:
    """n0 noisy copies, or one query on the clean image."""
    return params.n0 if params.candidate == "noisy" else 1


def worst_case_queries(params: CertifyParams) -> int:
    """What :meth:`Services.prepare` books: selection + n, whatever the mode."""
    return selection_queries(params) + params.n


def estimate_queries(
    params: CertifyParams,
    price_per_query: float,
    shape: tuple[int, ...] | None = None,
    prior: tuple[tuple[float, float], ...] = PRIOR,
) -> QueryEstimate:
    """The worst-case and expected queries and dollars of certifying with ``params``.

    ``shape`` (C, H, W) is the decoded image's, when known: it sets the chunk size, which the
    sequential plan's looks depend on for images too large for DEFAULT_CHUNK_SIZE copies per
    chunk; without it the plan of an image that fits is assumed."""
    worst = worst_case_queries(params)
    selection = selection_queries(params)
    if params.mode == "fixed":
        paths = tuple(
            PathEstimate(p, w, worst, _usd(worst, price_per_query), None) for p, w in prior
        )
        return QueryEstimate(
            worst_case_queries=worst,
            worst_case_usd=_usd(worst, price_per_query),
            expected_queries=float(worst),
            expected_usd=_usd(worst, price_per_query),
            paths=paths,
            price_per_query=price_per_query,
            bound=None,
            looks=1,
            chunk=None,
            alpha_per_look=None,
            summary="fixed plan: every request draws all its queries, so the expected cost is "
            "the worst case (an identical repeat is answered from the vote store for free)",
        )
    # The certifier's own plan, at the first ledger stream's share of alpha (rule 9).
    alpha = params.alpha * alpha_share(1)
    plan, chunk = certifier.sequential_plan(
        params.model_copy(update={"alpha": alpha}), shape or _FITTING_SHAPE
    )
    walked = []
    for p, w in prior:
        drawn, reason = _stop(plan, params.sigma, params.target_radius, params.tolerance, p)
        queries = selection + drawn
        walked.append(PathEstimate(p, w, queries, _usd(queries, price_per_query), reason))
    total = sum(w for _, w in prior)
    expected = sum(path.queries * path.weight for path in walked) / total
    bound_name = (
        "a betting confidence sequence"
        if plan.bound == "betting"
        else "Clopper-Pearson at alpha / K at K doubling looks"
    )
    prior_text = ", ".join(f"{p:g}: {w:g}" for p, w in prior)
    return QueryEstimate(
        worst_case_queries=worst,
        worst_case_usd=_usd(worst, price_per_query),
        expected_queries=round(expected, 1),
        expected_usd=_usd(expected, price_per_query),
        paths=tuple(walked),
        price_per_query=price_per_query,
        bound=plan.bound,
        looks=len(plan.looks),
        chunk=chunk,
        alpha_per_look=plan.alpha_per_look,
        summary=f"an estimate, not a quote: the certifier's sequential plan ({bound_name}, "
        f"{len(plan.looks):,} looks from {plan.looks[0]:,} samples) and stopping rule run on "
        "the expected vote path (round(p_A x samples) votes for the candidate at every look) of "
        f"each p_A of an assumed prior {{p_A: weight}} = {{{prior_text}}}, plus {selection:,} "
        f"selection quer{'y' if selection == 1 else 'ies'}; at the first ledger stream's alpha "
        "(another request for the same image with other parameters gets less and needs more), "
        "nothing from the vote store. Real votes scatter around the path; the worst case holds "
        "whatever they are",
    )


def _usd(queries: float, price_per_query: float) -> float:
    return round(queries * price_per_query, 6)


@functools.lru_cache(maxsize=1024)
def _stop(
    plan: smoothing.SequentialPlan,
    sigma: float,
    target_radius: float | None,
    tolerance: float,
    p_a: float,
) -> tuple[int, str | None]:
    """(samples drawn, stop reason) of ``plan`` on the expected vote path of ``p_a``."""
    previous: smoothing.CertifyResult | None = None
    for look in _evaluated_looks(plan.looks):
        n = plan.looks[look]
        step = smoothing.sequential_look(
            plan, look, _CERTIFIED, {_CERTIFIED: round(p_a * n)}, sigma, target_radius,
            tolerance, previous,
        )  # fmt: skip
        if step.stop:
            return n, step.reason
        previous = step.result
    raise AssertionError("the last look stops")  # pragma: no cover


def _evaluated_looks(looks: tuple[int, ...]) -> list[int]:
    """Indexes of the looks to evaluate: all of the first EXACT_LOOKS, then one whenever the
    sample count has grown by LOOK_SPACING, and the last. Skipping looks is what the certifier
    would do with coarser chunks: the bound stays valid, and a stop is only found later."""
    chosen = list(range(min(len(looks), EXACT_LOOKS)))
    for index in range(len(chosen), len(looks)):
        if index == len(looks) - 1 or looks[index] >= looks[chosen[-1]] * (1 + LOOK_SPACING):
            chosen.append(index)
    return chosen

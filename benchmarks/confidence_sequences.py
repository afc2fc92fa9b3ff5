"""Anytime-valid bounds for sequential certification: Clopper-Pearson alpha-spending vs betting.

Simulated vote streams: given the candidate, each estimation vote is Bernoulli(p_A), so a
stream of votes is all that the statistics ever see. Same streams for every method (paired).

Target mode (``target_radius = r``, certified when p_lower >= Phi(r / sigma)), per (r, p_A):

- ``cp-looks``: ``SequentialPlan.doubling`` with the pipeline's ``first`` and ``sequential_look``
  at every look (Clopper-Pearson at alpha / K, K looks) — the plan the service used for a target
  before betting, and still uses without one;
- ``bet-looks``: the betting confidence sequence (``service.core.betting``, grid-Kelly mixture) read
  only at the same looks;
- ``bet-chunks``: the same sequence read after every chunk of ``first`` samples, the rounds the
  pipeline already queries in (looking costs nothing under an anytime-valid bound) — the
  service's plan for a target (``SequentialPlan.every``; the same m0 and stopping tests as
  ``sequential_look``, computed here from rejection thresholds for speed);
- ``bet-every``: after every sample (a lower limit for the two above);
- ``prpl-looks`` / ``prpl-every``: W-S&R's predictable plug-in bets (truncation 1/2), for reference.

Betting methods stop as unreachable when the mirrored upper sequence (also at alpha) falls
below Phi(r / sigma), like ``sequential_look`` does with its upper bound. Reported: certified
and unreachable fractions and the estimation queries spent (until certified, shown
unreachable, or the budget): median, mean, 90th percentile.

No target ("largest radius within budget"): the radius certified at budget n for CP at fixed n
(alpha, one look — not sequential), CP alpha-spending (its last look, alpha / K), and betting
(running maximum over the looks, or over the chunks).

    OMP_NUM_THREADS=1 .venv/bin/dsmooth bench confidence-sequences
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm
from tqdm import tqdm

from benchmarks.provenance import provenance, write_report
from service.core import betting, smoothing
from service.core.certifier import DEFAULT_FIRST_LOOK, chunk_size_for
from service.core.results import CertifyParams

# --- the predictable plug-in bets of W-S&R (order-dependent): the alternative measured, not shipped


def plugin_log_capital(
    x: ArrayLike, m: ArrayLike, alpha: float, truncation: float = 0.5
) -> NDArray[np.float64]:
    """log K_t(m), t = 1..T, for the one-sided PrPl bets of W-S&R, along the last axis of ``x``.

    lambda_t = min(sqrt(2 log(1/alpha) / (sigma2_{t-1} t log(1 + t))), truncation / m), where
    sigma2_{t-1} = (1/4 + sum_{i<t} (X_i - mu_i)^2) / t and mu_i = (1/2 + sum_{j<=i} X_j) / (i + 1)
    use only X_1..X_{t-1}. The bet depends on m only through the truncation, and
    lambda(m) * m and lambda(m) * (1 - m) are then nondecreasing / nonincreasing in m, so every
    factor — and K_t(m) — is nonincreasing in m. ``m`` broadcasts against ``x[..., :1]``.
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1)")
    if not 0 < truncation < 1:
        raise ValueError("truncation must lie in (0, 1)")
    xs = np.asarray(x, dtype=np.float64)
    mm = np.asarray(m, dtype=np.float64)
    if np.any(~(mm > 0)) or np.any(mm > 1):
        raise ValueError("m must lie in (0, 1]")
    t = np.arange(1, xs.shape[-1] + 1, dtype=np.float64)
    mu = (0.5 + np.cumsum(xs, axis=-1)) / (t + 1)
    sigma2 = (0.25 + np.cumsum((xs - mu) ** 2, axis=-1)) / (t + 1)
    sigma2_prev = np.concatenate([np.full((*xs.shape[:-1], 1), 0.25), sigma2[..., :-1]], axis=-1)
    bet = np.sqrt(2 * math.log(1 / alpha) / (sigma2_prev * t * np.log1p(t)))
    bet = np.minimum(bet, truncation / mm)
    return np.asarray(np.cumsum(np.log1p(bet * (xs - mm)), axis=-1))


def plugin_running_lower_bound(
    x: ArrayLike, alpha: float, truncation: float = 0.5
) -> NDArray[np.float64]:
    """L_T (running maximum over all t <= T) of the PrPl sequence, per stream (leading axes).

    Bisection on the predicate "m was rejected at some t <= T", which is monotone in m because
    every K_t(m) is; the returned multiple of 2**-40 was rejected, so it is <= the exact L_T.
    """
    xs = np.asarray(x, dtype=np.float64)
    shape = xs.shape[:-1]
    limit = betting.threshold(alpha, np.arange(1, xs.shape[-1] + 1))
    lo, hi = np.zeros(shape), np.ones(shape)
    for _ in range(40):  # as betting.lower_bound: multiples of 2**-40
        mid = (lo + hi) / 2
        hit = np.any(plugin_log_capital(xs, mid[..., None], alpha, truncation) >= limit, axis=-1)
        lo = np.where(hit, mid, lo)
        hi = np.where(hit, hi, mid)
    return np.asarray(lo)


ALPHA: float = CertifyParams.model_fields["alpha"].default
FIRST_LOOK: int = DEFAULT_FIRST_LOOK  # the pipeline's first look without a target
TOLERANCE: float = CertifyParams.model_fields["tolerance"].default
CIFAR_SHAPE = (3, 32, 32)

CERTIFIED, UNREACHABLE, BUDGET = 0, 1, 2
Bets = tuple[tuple[float, ...], tuple[float, ...] | None]  # (bets, weights or None: uniform)
METHODS = ("cp-looks", "bet-looks", "bet-chunks", "bet-every", "prpl-looks", "prpl-every")


def pipeline_first(first_look: int, shape: tuple[int, ...]) -> int:
    """The first look's size as ``Certifier._sequential`` computes it (whole chunks)."""
    unit = min(first_look, chunk_size_for(shape))
    return unit * -(-first_look // unit)


def _streams(rng: np.random.Generator, p: float, count: int, n: int, batch: int) -> Iterator[
    NDArray[np.bool_]
]:  # fmt: skip
    for start in range(0, count, batch):
        yield rng.random((min(batch, count - start), n)) < p


def _first_stop(
    certified: NDArray[np.bool_], unreachable: NDArray[np.bool_], times: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(queries, outcome) for a stop at the first evaluated time where either test fires.

    ``certified`` / ``unreachable`` are (streams, len(times)); certification is checked first,
    as in ``sequential_look``; the last time is the budget.
    """
    fired = certified | unreachable
    index = np.where(fired.any(axis=1), fired.argmax(axis=1), len(times) - 1)
    rows = np.arange(len(index))
    outcome = np.where(
        certified[rows, index], CERTIFIED, np.where(unreachable[rows, index], UNREACHABLE, BUDGET)
    )
    return times[index], outcome


class TargetRun:
    """All methods for one target radius (thresholds and CP looks are shared across p_A)."""

    def __init__(
        self, radius: float, sigma: float, alpha: float, n: int, first: int, bets: Bets
    ) -> None:
        self.radius, self.sigma, self.alpha, self.n = radius, sigma, alpha, n
        # A hair above Phi(r / sigma) so that float error in the cdf cannot certify too much.
        self.m0 = min(float(norm.cdf(radius / sigma)) + 1e-12, 1.0)
        self.plan = smoothing.SequentialPlan.doubling(min(first, n), n, alpha)
        self.looks = np.asarray(self.plan.looks, dtype=np.int64)
        self.chunks = np.unique(np.append(np.arange(first, n + 1, first), n)).astype(np.int64)
        self.every = np.arange(1, n + 1, dtype=np.int64)
        # s*(t) and f*(t): fewest successes (failures) in t votes that reject p <= m0 (p >= m0).
        self.lower = betting.rejection_thresholds(self.m0, alpha, n, *bets)
        self.upper = betting.rejection_thresholds(1 - self.m0, alpha, n, *bets)
        self._cp: Callable[[int, int], int] = functools.cache(self._cp_look)

    def _cp_look(self, look: int, n_a: int) -> int:
        n = self.plan.looks[look]
        step = smoothing.sequential_look(
            self.plan, look, "a", {"a": n_a, "b": n - n_a}, self.sigma, self.radius, TOLERANCE
        )
        if not step.stop:
            return -1
        return {"target_certified": CERTIFIED, "target_unreachable": UNREACHABLE}.get(
            step.reason or "", BUDGET
        )

    def cp(self, successes: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        queries = np.full(len(successes), -1, dtype=np.int64)
        outcome = np.full(len(successes), -1, dtype=np.int64)
        for look, n in enumerate(self.plan.looks):
            active = queries < 0
            counts = successes[active, n - 1]
            decided = np.array([self._cp(look, int(c)) for c in counts], dtype=np.int64)
            stop = decided >= 0
            idx = np.flatnonzero(active)[stop]
            queries[idx], outcome[idx] = n, decided[stop]
        return queries, outcome

    def mixture(
        self, successes: NDArray[np.int64], times: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        s = successes[:, times - 1]
        return _first_stop(s >= self.lower[times], times - s >= self.upper[times], times)

    def plugin(self, votes: NDArray[np.bool_]) -> dict[str, tuple[NDArray[np.int64], ...]]:
        x = votes.astype(np.float64)
        limit = betting.threshold(self.alpha, self.every)
        certified = plugin_log_capital(x, self.m0, self.alpha) >= limit
        unreachable = plugin_log_capital(1 - x, 1 - self.m0, self.alpha) >= limit
        return {
            "prpl-looks": _first_stop(
                certified[:, self.looks - 1], unreachable[:, self.looks - 1], self.looks
            ),
            "prpl-every": _first_stop(certified, unreachable, self.every),
        }

    def run(
        self, votes: NDArray[np.bool_], plugin: bool
    ) -> dict[str, tuple[NDArray[np.int64], ...]]:
        successes = np.cumsum(votes, axis=1, dtype=np.int64)
        out: dict[str, tuple[NDArray[np.int64], ...]] = {
            "cp-looks": self.cp(successes),
            "bet-looks": self.mixture(successes, self.looks),
            "bet-chunks": self.mixture(successes, self.chunks),
            "bet-every": self.mixture(successes, self.every),
        }
        if plugin:
            out.update(self.plugin(votes))
        return out


def _summary(queries: NDArray[np.int64], outcome: NDArray[np.int64]) -> dict[str, float]:
    return {
        "certified": float(np.mean(outcome == CERTIFIED)),
        "unreachable": float(np.mean(outcome == UNREACHABLE)),
        "queries_median": float(np.median(queries)),
        "queries_mean": round(float(np.mean(queries)), 1),
        "queries_p90": float(np.percentile(queries, 90)),
    }


def target_mode(args: argparse.Namespace, rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    configs = [(r, p) for r in args.radius for p in args.p]
    runs = {
        r: TargetRun(r, args.sigma, args.alpha, args.n, args.first, args.bets) for r in args.radius
    }
    for r, p in tqdm(configs, desc="target radius x p_A", unit="config"):
        run = runs[r]
        parts: dict[str, list[NDArray[np.int64]]] = {}
        for votes in _streams(rng, p, args.streams, args.n, args.batch):
            for method, (queries, outcome) in run.run(votes, args.plugin).items():
                parts.setdefault(method + "/q", []).append(queries)
                parts.setdefault(method + "/o", []).append(outcome)
        for method in [m for m in METHODS if m + "/q" in parts]:
            queries, outcome = (
                np.concatenate(parts[method + "/q"]),
                np.concatenate(parts[method + "/o"]),
            )
            rows.append({
                "radius": r, "p_a": p, "m0": run.m0, "method": method,
                **_summary(queries, outcome),
                # Certificates of an unreachable radius are wrong: the rate must stay <= alpha.
                "wrong": float(np.mean(outcome == CERTIFIED)) if p < run.m0 else 0.0,
            })  # fmt: skip
    return rows


def _radius(p_lower: NDArray[np.float64], sigma: float) -> NDArray[np.float64]:
    """sigma * Phi^-1(p_lower), 0 when abstaining, rounded down like the service (6 decimals)."""
    safe = np.where(p_lower >= 0.5, p_lower, 0.5)
    exact = np.maximum(sigma * norm.ppf(safe), 0.0)
    return np.where(p_lower >= 0.5, np.floor(exact * 1e6) / 1e6, 0.0)


def radius_mode(args: argparse.Namespace, rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    budgets = sorted(set(args.budget))
    for p in tqdm(args.p, desc="no target: p_A", unit="p"):
        votes = rng.random((args.radius_streams, max(budgets))) < p
        successes = np.cumsum(votes, axis=1, dtype=np.int64)
        for n in budgets:
            plan = smoothing.SequentialPlan.doubling(min(args.first, n), n, args.alpha)
            looks = np.asarray(plan.looks, dtype=np.int64)
            chunks = np.unique(np.append(np.arange(args.first, n + 1, args.first), n))
            n_a = successes[:, n - 1]
            fixed = _cp_lower(n_a, n, args.alpha)
            spending = _cp_lower(n_a, n, plan.alpha_per_look)
            at_looks = betting.running_lower_bound(
                successes[:, looks - 1], looks, args.alpha, *args.bets
            )[:, -1]
            at_chunks = betting.running_lower_bound(
                successes[:, chunks - 1], chunks, args.alpha, *args.bets
            )[:, -1]
            for method, p_lower in (
                ("cp-fixed-n", fixed),
                ("cp-spending", spending),
                ("bet-looks", at_looks),
                ("bet-chunks", at_chunks),
            ):
                radius = _radius(p_lower, args.sigma)
                rows.append({
                    "p_a": p, "n": n, "method": method,
                    "radius_median": float(np.median(radius)),
                    "radius_mean": round(float(np.mean(radius)), 6),
                    "abstain": float(np.mean(radius == 0.0)),
                })  # fmt: skip
    return rows


def _cp_lower(n_a: NDArray[np.int64], n: int, alpha: float) -> NDArray[np.float64]:
    cache: dict[int, float] = {}
    return np.array(
        [cache.setdefault(int(a), smoothing.lower_confidence_bound(int(a), n, alpha)) for a in n_a]
    )


def _print_target(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    for r in args.radius:
        block = [row for row in rows if row["radius"] == r]
        print(
            f"\ntarget r = {r} (certified when p_lower >= {block[0]['m0']:.6f}), sigma "
            f"{args.sigma}, alpha {args.alpha}, budget {args.n}, {args.streams} streams"
        )
        print(f"  {'p_A':>6}  {'method':<11} {'cert%':>6} {'unreach%':>8} "
              f"{'median':>7} {'mean':>8} {'p90':>7}  {'CP/this (mean)':>14}")  # fmt: skip
        for p in args.p:
            group = {row["method"]: row for row in block if row["p_a"] == p}
            cp_mean = group["cp-looks"]["queries_mean"]
            for method, row in group.items():
                print(
                    f"  {p:>6}  {method:<11} {100 * row['certified']:>6.1f} "
                    f"{100 * row['unreachable']:>8.1f} {row['queries_median']:>7.0f} "
                    f"{row['queries_mean']:>8.1f} {row['queries_p90']:>7.0f}  "
                    f"{cp_mean / row['queries_mean']:>14.2f}"
                )


def _print_radius(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    methods = ("cp-fixed-n", "cp-spending", "bet-looks", "bet-chunks")
    print(
        f"\nno target: median certified radius at budget n (sigma {args.sigma}, alpha "
        f"{args.alpha}, {args.radius_streams} streams; cp-fixed-n is not sequential)"
    )
    print(f"  {'p_A':>6} {'n':>6}  " + " ".join(f"{m:>11}" for m in methods))
    for n in sorted(set(args.budget)):
        for p in args.p:
            got = {row["method"]: row for row in rows if row["p_a"] == p and row["n"] == n}
            print(
                f"  {p:>6} {n:>6}  "
                + " ".join(f"{got[m]['radius_median']:>11.4f}" for m in methods)
            )


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    target = target_mode(args, rng)
    _print_target(target, args)
    radius = radius_mode(args, rng) if args.radius_streams else []
    if radius:
        _print_radius(radius, args)
    return {
        "benchmark": "confidence_sequences",
        "alpha": args.alpha,
        "sigma": args.sigma,
        "n": args.n,
        "first": args.first,
        "streams": args.streams,
        "radius_streams": args.radius_streams,
        "bets": list(args.bets[0]),
        "bet_weights": None if args.bets[1] is None else list(args.bets[1]),
        "seed": args.seed,
        "target": target,
        "radius": radius,
        "seconds": round(time.perf_counter() - start, 1),
        "provenance": provenance("cpu"),  # numpy simulation
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _bets(text: str) -> Bets:
    values = tuple(float(v) for v in text.split(","))
    if not values or not all(0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError("bets are fractions in (0, 1), comma-separated")
    return values, None  # uniform weights


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dsmooth bench confidence-sequences", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--streams", type=int, default=2000, help="streams per (r, p_A)")
    parser.add_argument("--n", type=int, default=10_000, help="query budget (max n)")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="the service's default")
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--radius", type=float, action="append", default=None)
    parser.add_argument("--p", type=float, action="append", default=None, help="true p_A")
    parser.add_argument(
        "--first", type=int, default=pipeline_first(FIRST_LOOK, CIFAR_SHAPE),
        help="first look (the pipeline's, for the default first_look and a CIFAR image)",
    )  # fmt: skip
    parser.add_argument(
        "--bets", type=_bets, default=(betting.DEFAULT_BETS, betting.DEFAULT_WEIGHTS),
        help="betting grid w_1,w_2,... (uniform weights); default: service.core.betting's",
    )  # fmt: skip
    parser.add_argument("--no-plugin", dest="plugin", action="store_false", help="skip PrPl")
    parser.add_argument("--budget", type=int, action="append", default=None, help="no-target n")
    parser.add_argument("--radius-streams", type=int, default=1000, help="0: skip no-target")
    parser.add_argument("--batch", type=int, default=250, help="streams simulated at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path("build/benchmarks/confidence_sequences.json")
    )
    arguments = parser.parse_args(argv)
    arguments.radius = arguments.radius or [0.25, 0.5]
    arguments.p = arguments.p or [0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0]
    arguments.budget = arguments.budget or [1000, 10_000]
    if not 0 < arguments.alpha < 1 or math.isnan(arguments.alpha):
        parser.error("alpha must lie in (0, 1)")
    report = run(arguments)
    write_report(arguments.out, report)


if __name__ == "__main__":
    main()

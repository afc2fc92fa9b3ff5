"""Anytime-valid lower confidence sequences for a Bernoulli mean, by betting.

Pure numpy/scipy: no torch, no I/O. Everything is vectorised over leading axes, so one call
handles many simulated vote streams.

Setting. X_1, X_2, ... are i.i.d. Bernoulli(p) (a vote for the candidate class or not).
Following Waudby-Smith & Ramdas (2023), "Estimating means of bounded random variables by
betting", JRSS-B, a gambler who bets that the mean exceeds m holds the capital

    K_t(m) = prod_{i <= t} (1 + lambda_i(m) (X_i - m)),   K_0(m) = 1,

with bets lambda_i(m) >= 0 that are *predictable* (fixed before X_i is seen) and truncated so
that every factor stays positive (lambda_i(m) * m < 1). For every m >= p, K_t(m) is a
nonnegative supermartingale, so Ville's inequality gives P[exists t: K_t(p) >= 1/alpha] <= alpha.

Guarantee. m is *rejected* at time t when K_t(m) >= 1/alpha. Both capital processes below are
nonincreasing in m (proved at each), so the rejected set at time t is an interval (0, l_t] and

    P[ p > L_t for every t >= 1 ] >= 1 - alpha,   L_t = max_{s <= t} l_s

— the running maximum over time. The bound holds at every time simultaneously, hence at any
stopping time whatever the stopping rule (target certified, target unreachable, budget spent);
evaluating it only at some times (looks, chunk boundaries) can only lower it and stays valid.

Two bet choices are implemented:

- :func:`mixture_log_capital`: a weighted average of constant-bet capitals, lambda = w_j / m
  over a fixed grid of w_j in (0, 1) (W-S&R's grid-Kelly / diversified capital, with the bets
  scaled by 1/m). An average of capitals is itself of the product form above (its bet at step
  i is the capital-weighted mean of the w_j / m, predictable), and its value depends only on
  the counts (successes, trials), not on their order: it can be computed from the vote store's
  chunk counts.
- :func:`plugin_log_capital`: the predictable plug-in ("PrPl") bets of W-S&R, one-sided
  (log(1/alpha) where the two-sided hedged process has log(2/alpha)), truncated at
  ``truncation / m``. Depends on the order of the votes.

Conservatism. Bounds are computed by bisection on the dyadic grid of spacing 2**-40: the
reported value is a grid point that was itself rejected, so it never exceeds the exact l_t.
Rejection needs log K >= log(1/alpha) + a margin (1e-6 nats, growing with t) that exceeds the
float error of the log-capital, so a float error can only make the bound lower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_BETS",
    "DEFAULT_WEIGHTS",
    "lower_bound",
    "mixture_log_capital",
    "rejection_thresholds",
    "rejects",
    "running_lower_bound",
    "threshold",
    "upper_bound",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

# Fractions w of the "all-in" bet 1/m. Kelly's bet against m when the truth is q is
# w* = (q - m) / (1 - m). Geometric spacing towards 1 covers q near 1 (the common case in
# randomized smoothing, p_A > 0.99) with few points: the mixture pays log(1 / weight) nats over
# the best bet in hindsight, so every extra point costs. The two smallest bets (2% weight each)
# only matter for very long streams: as t grows the bound tends to about p - w_min / 2 at worst
# (1/64 with w_min = 1/32); with them it ends within ~5e-4 of p. Chosen by a
# pilot simulation (target radii 0.25 / 0.5 at sigma 0.25, alpha 0.001, p_A 0.6..1) among
# uniform grids of 10 and 20 points and geometric grids of 5 to 14 points.
DEFAULT_BETS: tuple[float, ...] = (
    1 / 1024, 1 / 128,
    1 / 32, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 7 / 8, 15 / 16, 31 / 32, 63 / 64, 127 / 128,
)  # fmt: skip
DEFAULT_WEIGHTS: tuple[float, ...] = (0.02, 0.02) + (0.096,) * 10

_BISECTION_BITS = 40  # bounds are multiples of 2**-40 (exact in float64, so 1 - bound is too)
_FEW_COUNTS, _FEW_BITS = 4, 4  # lower_bound of at most 4 counts: 4 bits a round
_MARGIN_NATS = 1e-6


def threshold(alpha: float, trials: ArrayLike) -> FloatArray:
    """log(1/alpha) plus a safety margin (nats) that grows with the number of terms summed."""
    _check_alpha(alpha)
    t = np.asarray(trials, dtype=np.float64)
    return np.asarray(math.log(1 / alpha) + _MARGIN_NATS * (1 + t / 1000), dtype=np.float64)


# --- grid-Kelly mixture (order-free) ----------------------------------------------------------


def mixture_log_capital(
    successes: ArrayLike,
    trials: ArrayLike,
    m: ArrayLike,
    bets: Sequence[float] = DEFAULT_BETS,
    weights: Sequence[float] | None = DEFAULT_WEIGHTS,
) -> FloatArray:
    """log K_t(m) of the grid-Kelly mixture after ``successes`` of ``trials`` votes.

    K_t(m) = sum_j weights_j (1 - w_j)^(t - S) (1 - w_j + w_j / m)^S, with w_j = ``bets`` in
    (0, 1) and ``weights`` summing to 1 (None: uniform). Each term is the capital of the
    constant bet lambda = w_j / m: a martingale when p = m and a supermartingale when p < m.
    Nonincreasing in m (only (1 - w + w/m) depends on m, and it decreases), nondecreasing in S
    at fixed t. Arguments broadcast; m must lie in (0, 1].
    """
    w, log_weights = _grid(bets, weights)
    s = np.asarray(successes, dtype=np.float64)[..., None]
    t = np.asarray(trials, dtype=np.float64)[..., None]
    mm = np.asarray(m, dtype=np.float64)
    if np.any(~(mm > 0)) or np.any(mm > 1):
        raise ValueError("m must lie in (0, 1]")
    return _log_capital(log_weights + (t - s) * np.log1p(-w), s, w, mm[..., None])


def _log_capital(base: FloatArray, s: FloatArray, w: FloatArray, m: FloatArray) -> FloatArray:
    """log sum_j exp(base_j + s log(1 - w_j + w_j / m)): the part of
    :func:`mixture_log_capital` that depends on m, split off so that a bisection computes
    ``base_j = log weight_j + (t - s) log(1 - w_j)`` once.
    """
    # log(1 - w + w/m) = log1p(w (1 - m) / m): accurate for m near 1, where 1 - m is exact.
    terms = base + s * np.log1p(w * ((1 - m) / m))
    top = terms.max(axis=-1)
    return np.asarray(top + np.log(np.exp(terms - top[..., None]).sum(axis=-1)))


def rejects(
    successes: ArrayLike,
    trials: ArrayLike,
    m: ArrayLike,
    alpha: float,
    bets: Sequence[float] = DEFAULT_BETS,
    weights: Sequence[float] | None = DEFAULT_WEIGHTS,
) -> BoolArray:
    """Whether the mixture rejects "p <= m" (capital >= 1/alpha) after these counts.

    By the monotonicity in m this is exactly "the lower bound at this time is >= m" (up to the
    float margin); a test of the composite null p <= m at level alpha, valid at any stopping time.
    """
    capital = mixture_log_capital(successes, trials, m, bets, weights)
    return np.asarray(capital >= threshold(alpha, trials))


def lower_bound(
    successes: ArrayLike,
    trials: ArrayLike,
    alpha: float,
    bets: Sequence[float] = DEFAULT_BETS,
    weights: Sequence[float] | None = DEFAULT_WEIGHTS,
) -> FloatArray:
    """l_t = sup of the rejected m after these counts (NOT yet the running maximum).

    The largest multiple of 2**-40 that the mixture rejects (0 when none is), so never above
    the exact value. Repeated (successes, trials) pairs are computed once.
    """
    s, t = _counts(successes, trials)
    span = int(t.max(initial=0)) + 1
    keys, inverse = np.unique((t * span + s).ravel(), return_inverse=True)
    u_t, u_s = keys // span, keys % span
    # m = 1 is never rejected (K_t(1) <= 1) and nothing is rejected without a success.
    live = u_s > 0
    limit = threshold(alpha, u_t[live])
    # The m-free part of mixture_log_capital, computed once (the same float operations).
    w, log_weights = _grid(bets, weights)
    s_live = u_s[live].astype(np.float64)[:, None]
    base = log_weights + (u_t[live].astype(np.float64)[:, None] - s_live) * np.log1p(-w)
    # A search on the grid of multiples of 2**-40 for the largest one rejected: each round
    # tries lo + k step for k = 1 .. 2**bits - 1 and moves lo to the largest rejected. One bit a
    # round (bisection) for many counts at once; four for a few (a look of the certifier: a
    # quarter of the numpy calls, whose overhead is most of its ~1 ms).
    bits = _FEW_BITS if s_live.shape[0] <= _FEW_COUNTS else 1
    lo, step = np.zeros(s_live.shape[0]), 1.0
    k = np.arange(1, 1 << bits, dtype=np.float64)
    for _ in range(_BISECTION_BITS // bits):
        step /= 1 << bits
        m = lo[:, None] + k * step  # exact: dyadic rationals with <= 40 bits
        hit = _log_capital(base[:, None, :], s_live[:, :, None], w, m[..., None]) >= limit[:, None]
        lo = lo + np.where(hit, k, 0.0).max(axis=1) * step
    bound = np.zeros(keys.shape)
    bound[live] = lo
    return np.asarray(bound[inverse].reshape(s.shape))


def upper_bound(
    successes: ArrayLike,
    trials: ArrayLike,
    alpha: float,
    bets: Sequence[float] = DEFAULT_BETS,
    weights: Sequence[float] | None = DEFAULT_WEIGHTS,
) -> FloatArray:
    """The mirror image: 1 - (lower bound on 1 - p from the failures); never below the exact value.

    Valid on its own at level alpha; with :func:`lower_bound` at level alpha the two-sided
    statement holds at 2 alpha. 1 - (multiple of 2**-40) is exact in float64.
    """
    s, t = _counts(successes, trials)
    return np.asarray(1.0 - lower_bound(t - s, t, alpha, bets, weights))


def running_lower_bound(
    successes: ArrayLike,
    trials: ArrayLike,
    alpha: float,
    bets: Sequence[float] = DEFAULT_BETS,
    weights: Sequence[float] | None = DEFAULT_WEIGHTS,
) -> FloatArray:
    """L_t = max over the times evaluated so far (the last axis) of :func:`lower_bound`.

    ``successes`` and ``trials`` are cumulative counts at increasing times along the last axis
    (every sample, or only the looks); the result is valid whichever times were evaluated.
    """
    s, t = _counts(successes, trials)
    if s.ndim == 0:
        raise ValueError("need a time axis (the last axis)")
    return np.asarray(np.maximum.accumulate(lower_bound(s, t, alpha, bets, weights), axis=-1))


def rejection_thresholds(
    m: float,
    alpha: float,
    horizon: int,
    bets: Sequence[float] = DEFAULT_BETS,
    weights: Sequence[float] | None = DEFAULT_WEIGHTS,
) -> IntArray:
    """s*(t) for t = 0..horizon: the fewest successes in t trials with which m is rejected.

    ``horizon + 2`` marks "not with any count" (it exceeds every possible count). With these,
    "rejected at time t" is ``S_t >= s*(t)`` — an O(1) check per sample for a fixed target.
    """
    if horizon < 0:
        raise ValueError("horizon must be >= 0")
    t = np.arange(horizon + 1, dtype=np.int64)
    lo = np.zeros_like(t)  # never rejects: K_t(m) < 1 with no successes
    hi = t + 1  # the sentinel side of the bisection: "rejected" at an impossible count
    limit = threshold(alpha, t)
    while np.any(open_ := hi - lo > 1):
        mid = (lo + hi) // 2
        hit = mixture_log_capital(mid[open_], t[open_], m, bets, weights) >= limit[open_]
        hi[open_] = np.where(hit, mid[open_], hi[open_])
        lo[open_] = np.where(hit, lo[open_], mid[open_])
    return np.where(hi > t, horizon + 2, hi)


# --- helpers ----------------------------------------------------------------------------------


def _grid(bets: Sequence[float], weights: Sequence[float] | None) -> tuple[FloatArray, FloatArray]:
    w = np.asarray(bets, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or np.any(~(w > 0)) or np.any(w >= 1):
        raise ValueError("bets must be a non-empty list of fractions in (0, 1)")
    if weights is None:
        pi = np.full(w.shape, 1 / w.size)
    else:
        pi = np.asarray(weights, dtype=np.float64)
        if pi.shape != w.shape or np.any(pi < 0) or not math.isclose(pi.sum(), 1, rel_tol=1e-12):
            raise ValueError("weights must be >= 0, one per bet, and sum to 1")
    with np.errstate(divide="ignore"):  # a zero weight is a bet left out: log 0 = -inf
        return w, np.log(pi)


def _counts(successes: ArrayLike, trials: ArrayLike) -> tuple[IntArray, IntArray]:
    s_in, t_in = np.asarray(successes), np.asarray(trials)
    if not (np.issubdtype(s_in.dtype, np.integer) and np.issubdtype(t_in.dtype, np.integer)):
        raise ValueError("successes and trials must be integers")
    s, t = np.broadcast_arrays(s_in.astype(np.int64), t_in.astype(np.int64))
    if np.any(s < 0) or np.any(s > t):
        raise ValueError("need 0 <= successes <= trials")
    return s, t


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1) (got {alpha})")

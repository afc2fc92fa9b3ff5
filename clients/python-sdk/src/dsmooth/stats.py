"""The arithmetic of a certificate, in pure Python (no numpy, no scipy): the Clopper-Pearson
lower bound, the radius sigma * Phi^-1(p_lower) rounded down, and the betting confidence
sequence's bound. The same algorithms, step for step, are in the TypeScript SDK
(clients/typescript/src/stats.ts); tests compare both with scipy and with the service.

- Phi^-1: Wichura's algorithm AS 241 (PPND16), relative error about 1e-16.
- The regularised incomplete beta function I_x(a, b): the continued fraction of Numerical
  Recipes (modified Lentz), with log B(a, b) computed as R's ``lbeta`` does (Stirling-series
  corrections, so no cancellation between three huge log-gammas).
- The beta quantile: bisection of I_x(a, b) = q to a relative width of 1e-15.
"""

from __future__ import annotations

import math

__all__ = [
    "BETTING_BETS",
    "BETTING_WEIGHTS",
    "RADIUS_DECIMALS",
    "beta_ppf",
    "betainc",
    "betting_log_capital",
    "betting_lower_bound",
    "betting_rejects",
    "betting_threshold",
    "clopper_pearson_lower",
    "lbeta",
    "norm_ppf",
    "radius_from_p_lower",
    "round_down",
]

RADIUS_DECIMALS = 6
_LN_SQRT_2PI = 0.918938533204672741780329736406  # log(sqrt(2 pi))


# --- the normal quantile (AS 241) -------------------------------------------------------------


def norm_ppf(p: float) -> float:
    """Phi^-1(p) for p in [0, 1] (-inf at 0, inf at 1, nan outside)."""
    if math.isnan(p) or p < 0 or p > 1:
        return math.nan
    if p == 0:
        return -math.inf
    if p == 1:
        return math.inf
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return (q * (((((((2509.0809287301226727 * r + 33430.575583588128105) * r
                          + 67265.770927008700853) * r + 45921.953931549871457) * r
                        + 13731.693765509461125) * r + 1971.5909503065514427) * r
                      + 133.14166789178437745) * r + 3.387132872796366608)
                / (((((((5226.495278852545925 * r + 28729.085735721942674) * r
                        + 39307.89580009271061) * r + 21213.794301586595867) * r
                      + 5394.1960214247511077) * r + 687.1870074920579083) * r
                    + 42.313330701600911252) * r + 1.0))  # fmt: skip
    r = p if q < 0 else 1 - p
    r = math.sqrt(-math.log(r))
    if r <= 5:
        r -= 1.6
        value = ((((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r
                       + 0.24178072517745061177) * r + 1.27045825245236838258) * r
                     + 3.64784832476320460504) * r + 5.7694972214606914055) * r
                   + 4.6303378461565452959) * r + 1.42343711074968357734)
                 / (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r
                         + 0.0151986665636164571966) * r + 0.14810397642748007459) * r
                       + 0.68976733498510000455) * r + 1.6763848301838038494) * r
                     + 2.05319162663775882187) * r + 1.0))  # fmt: skip
    else:
        r -= 5
        value = ((((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r
                       + 0.0012426609473880784386) * r + 0.026532189526576123093) * r
                     + 0.29656057182850489123) * r + 1.7848265399172913358) * r
                   + 5.4637849111641143699) * r + 6.6579046435011037772)
                 / (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r
                         + 1.8463183175100546818e-5) * r + 7.868691311456132591e-4) * r
                       + 0.0148753612908506148525) * r + 0.13692988092273580531) * r
                     + 0.59983220655588793769) * r + 1.0))  # fmt: skip
    return -value if q < 0 else value


# --- log B(a, b) and the incomplete beta function ---------------------------------------------

_LANCZOS_G = 7.0
_LANCZOS = (
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
    -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
    1.5056327351493116e-7,
)  # fmt: skip


def _lgamma(x: float) -> float:
    """log Gamma(x) for x >= 0.5 (Lanczos, g = 7): the TypeScript SDK's, for the same bits."""
    x -= 1
    series = _LANCZOS[0]
    for i in range(1, len(_LANCZOS)):
        series += _LANCZOS[i] / (x + i)
    t = x + _LANCZOS_G + 0.5
    return _LN_SQRT_2PI + (x + 0.5) * math.log(t) - t + math.log(series)


def _stirling_correction(x: float) -> float:
    """log Gamma(x) - (x - 1/2) log x + x - log sqrt(2 pi), for x >= 10 (error < 1e-16)."""
    r = 1 / (x * x)
    return (1 / 12 + r * (-1 / 360 + r * (1 / 1260 + r * (-1 / 1680 + r * (1 / 1188 + r * (
        -691 / 360360 + r * (1 / 156))))))) / x  # fmt: skip


def lbeta(a: float, b: float) -> float:
    """log B(a, b) for a, b >= 0.5 (R's lbeta: no cancellation for large arguments)."""
    p, q = min(a, b), max(a, b)
    if p >= 10:
        corr = _stirling_correction(p) + _stirling_correction(q) - _stirling_correction(p + q)
        return (-0.5 * math.log(q) + _LN_SQRT_2PI + corr + (p - 0.5) * math.log(p / (p + q))
                + q * math.log1p(-p / (p + q)))  # fmt: skip
    if q >= 10:
        corr = _stirling_correction(q) - _stirling_correction(p + q)
        return (_lgamma(p) + corr + p - p * math.log(p + q)
                + (q - 0.5) * math.log1p(-p / (p + q)))  # fmt: skip
    return _lgamma(p) + _lgamma(q) - _lgamma(p + q)


def _continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf, modified Lentz)."""
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) >= tiny else tiny)
    h = d
    iterations = 1000 + int(20 * math.sqrt(max(a, b)))
    for m in range(1, iterations + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) >= tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) >= tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) >= tiny else tiny)
        c = 1 + aa / c
        c = c if abs(c) >= tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (the Beta(a, b) CDF at x)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - lbeta(a, b))
    if x < (a + 1) / (a + b + 2):
        return front * _continued_fraction(a, b, x) / a
    return 1 - front * _continued_fraction(b, a, 1 - x) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """The q quantile of Beta(a, b): bisection of I_x(a, b) = q (relative width 1e-15)."""
    if not 0 < q < 1:
        return 0.0 if q <= 0 else 1.0
    if b == 1:  # I_x(a, 1) = x^a
        return float(q ** (1 / a))
    lo, hi = 0.0, 1.0
    for _ in range(2000):
        mid = (lo + hi) / 2
        if mid <= lo or mid >= hi or hi - lo <= 1e-15 * hi:
            break
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound: the alpha quantile of
    Beta(k, n - k + 1); 0 when k = 0."""
    if not 0 <= successes <= trials or trials <= 0:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0 (got {successes}, "
                         f"{trials})")  # fmt: skip
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1) (got {alpha})")
    if successes == 0:
        return 0.0
    return beta_ppf(alpha, successes, trials - successes + 1)


def round_down(value: float, decimals: int = RADIUS_DECIMALS) -> float:
    """Largest float with ``decimals`` decimals that is <= ``value`` (never rounds up)."""
    if not math.isfinite(value):
        return value
    scale: int = 10**decimals
    rounded: float = math.floor(value * scale) / scale
    while rounded > value:  # value * scale and the division may each round up
        rounded = math.nextafter(rounded, -math.inf)
    return rounded


def radius_from_p_lower(p_lower: float, sigma: float) -> float:
    """sigma * Phi^-1(p_lower), rounded down to 6 decimals; 0 below p_lower = 0.5."""
    if not p_lower >= 0.5:
        return 0.0
    value = sigma * norm_ppf(p_lower)
    return round_down(value if value > 0 else 0.0)


# --- the betting confidence sequence (service/core/betting.py, scalar) -------------------------

BETTING_BETS: tuple[float, ...] = (
    1 / 1024, 1 / 128,
    1 / 32, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 7 / 8, 15 / 16, 31 / 32, 63 / 64, 127 / 128,
)  # fmt: skip
BETTING_WEIGHTS: tuple[float, ...] = (0.02, 0.02) + (0.096,) * 10
_LOG_WEIGHTS = tuple(math.log(w) for w in BETTING_WEIGHTS)
_BISECTION_BITS = 40
_MARGIN_NATS = 1e-6


def betting_threshold(alpha: float, trials: int) -> float:
    """log(1/alpha) plus the service's safety margin (nats), growing with the trials."""
    return math.log(1 / alpha) + _MARGIN_NATS * (1 + trials / 1000)


def _sum12(values: list[float]) -> float:
    """numpy's pairwise summation order for 12 terms (eight pairwise, four after)."""
    total = ((values[0] + values[1]) + (values[2] + values[3])) + (
        (values[4] + values[5]) + (values[6] + values[7]))  # fmt: skip
    for value in values[8:]:
        total += value
    return total


def _log_capital(base: list[float], successes: float, m: float) -> float:
    terms = [b + successes * math.log1p(w * ((1 - m) / m))
             for b, w in zip(base, BETTING_BETS, strict=True)]  # fmt: skip
    top = max(terms)
    return top + math.log(_sum12([math.exp(t - top) for t in terms]))


def _base(successes: int, trials: int) -> list[float]:
    return [lw + (trials - successes) * math.log1p(-w)
            for lw, w in zip(_LOG_WEIGHTS, BETTING_BETS, strict=True)]  # fmt: skip


def betting_log_capital(successes: int, trials: int, m: float) -> float:
    """log K_t(m) of the grid-Kelly mixture after ``successes`` of ``trials`` votes."""
    if not 0 < m <= 1:
        raise ValueError("m must lie in (0, 1]")
    return _log_capital(_base(successes, trials), float(successes), m)


def betting_rejects(successes: int, trials: int, m: float, alpha: float) -> bool:
    """Whether the mixture rejects "p <= m" after these counts (capital >= 1/alpha)."""
    return betting_log_capital(successes, trials, m) >= betting_threshold(alpha, trials)


def betting_lower_bound(successes: int, trials: int, alpha: float) -> float:
    """The largest multiple of 2**-40 that the mixture rejects (0 when none is)."""
    if not 0 <= successes <= trials:
        raise ValueError("need 0 <= successes <= trials")
    if successes == 0:
        return 0.0
    limit = betting_threshold(alpha, trials)
    base = _base(successes, trials)
    lo, hi = 0.0, 1.0
    for _ in range(_BISECTION_BITS):
        mid = (lo + hi) / 2
        if _log_capital(base, float(successes), mid) >= limit:
            lo = mid
        else:
            hi = mid
    return lo

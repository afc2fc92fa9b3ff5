/**
 * The arithmetic of a certificate: the Clopper-Pearson lower bound, the radius
 * sigma * Phi^-1(p_lower) rounded down, and the betting confidence sequence's bound. The same
 * algorithms, step for step, as the Python SDK (clients/python-sdk/src/dsmooth/stats.py);
 * tests compare both with scipy and with the service.
 *
 * - Phi^-1: Wichura's algorithm AS 241 (PPND16), relative error about 1e-16.
 * - I_x(a, b): the continued fraction of Numerical Recipes (modified Lentz), with log B(a, b)
 *   computed as R's `lbeta` does (Stirling-series corrections: no cancellation).
 * - The beta quantile: bisection of I_x(a, b) = q to a relative width of 1e-15.
 */

export const RADIUS_DECIMALS = 6;
const LN_SQRT_2PI = 0.918938533204672741780329736406;

/** Phi^-1(p) for p in [0, 1] (-Infinity at 0, Infinity at 1, NaN outside). */
export function normPpf(p: number): number {
  if (Number.isNaN(p) || p < 0 || p > 1) return NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  const q = p - 0.5;
  let r: number;
  if (Math.abs(q) <= 0.425) {
    r = 0.180625 - q * q;
    return (
      (q *
        (((((((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) *
          r +
          45921.953931549871457) *
          r +
          13731.693765509461125) *
          r +
          1971.5909503065514427) *
          r +
          133.14166789178437745) *
          r +
          3.387132872796366608)) /
      (((((((5226.495278852545925 * r + 28729.085735721942674) * r + 39307.89580009271061) * r +
        21213.794301586595867) *
        r +
        5394.1960214247511077) *
        r +
        687.1870074920579083) *
        r +
        42.313330701600911252) *
        r +
        1.0)
    );
  }
  r = q < 0 ? p : 1 - p;
  r = Math.sqrt(-Math.log(r));
  let value: number;
  if (r <= 5) {
    r -= 1.6;
    value =
      (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r +
        0.24178072517745061177) *
        r +
        1.27045825245236838258) *
        r +
        3.64784832476320460504) *
        r +
        5.7694972214606914055) *
        r +
        4.6303378461565452959) *
        r +
        1.42343711074968357734) /
      (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r +
        0.0151986665636164571966) *
        r +
        0.14810397642748007459) *
        r +
        0.68976733498510000455) *
        r +
        1.6763848301838038494) *
        r +
        2.05319162663775882187) *
        r +
        1.0);
  } else {
    r -= 5;
    value =
      (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r +
        0.0012426609473880784386) *
        r +
        0.026532189526576123093) *
        r +
        0.29656057182850489123) *
        r +
        1.7848265399172913358) *
        r +
        5.4637849111641143699) *
        r +
        6.6579046435011037772) /
      (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r +
        1.8463183175100546818e-5) *
        r +
        7.868691311456132591e-4) *
        r +
        0.0148753612908506148525) *
        r +
        0.13692988092273580531) *
        r +
        0.59983220655588793769) *
        r +
        1.0);
  }
  return q < 0 ? -value : value;
}

const LANCZOS_G = 7.0;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
  -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
  1.5056327351493116e-7,
];

/** log Gamma(x) for x >= 0.5 (Lanczos, g = 7). */
function lgamma(x: number): number {
  x -= 1;
  let series = LANCZOS[0];
  for (let i = 1; i < LANCZOS.length; i++) series += LANCZOS[i] / (x + i);
  const t = x + LANCZOS_G + 0.5;
  return LN_SQRT_2PI + (x + 0.5) * Math.log(t) - t + Math.log(series);
}

/** log Gamma(x) - (x - 1/2) log x + x - log sqrt(2 pi), for x >= 10. */
function stirlingCorrection(x: number): number {
  const r = 1 / (x * x);
  return (
    (1 / 12 +
      r *
        (-1 / 360 +
          r * (1 / 1260 + r * (-1 / 1680 + r * (1 / 1188 + r * (-691 / 360360 + r * (1 / 156))))))) /
    x
  );
}

/** log B(a, b) for a, b >= 0.5 (R's lbeta). */
export function lbeta(a: number, b: number): number {
  const p = Math.min(a, b);
  const q = Math.max(a, b);
  if (p >= 10) {
    const corr = stirlingCorrection(p) + stirlingCorrection(q) - stirlingCorrection(p + q);
    return (
      -0.5 * Math.log(q) +
      LN_SQRT_2PI +
      corr +
      (p - 0.5) * Math.log(p / (p + q)) +
      q * Math.log1p(-p / (p + q))
    );
  }
  if (q >= 10) {
    const corr = stirlingCorrection(q) - stirlingCorrection(p + q);
    return lgamma(p) + corr + p - p * Math.log(p + q) + (q - 0.5) * Math.log1p(-p / (p + q));
  }
  return lgamma(p) + lgamma(q) - lgamma(p + q);
}

function continuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  const eps = 1e-16;
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  d = 1 / (Math.abs(d) >= tiny ? d : tiny);
  let h = d;
  const iterations = 1000 + Math.trunc(20 * Math.sqrt(Math.max(a, b)));
  for (let m = 1; m <= iterations; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    d = 1 / (Math.abs(d) >= tiny ? d : tiny);
    c = 1 + aa / c;
    c = Math.abs(c) >= tiny ? c : tiny;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    d = 1 / (Math.abs(d) >= tiny ? d : tiny);
    c = 1 + aa / c;
    c = Math.abs(c) >= tiny ? c : tiny;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < eps) break;
  }
  return h;
}

/** The regularised incomplete beta function I_x(a, b) (the Beta(a, b) CDF at x). */
export function betainc(a: number, b: number, x: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(a * Math.log(x) + b * Math.log1p(-x) - lbeta(a, b));
  if (x < (a + 1) / (a + b + 2)) return (front * continuedFraction(a, b, x)) / a;
  return 1 - (front * continuedFraction(b, a, 1 - x)) / b;
}

/** The q quantile of Beta(a, b). */
export function betaPpf(q: number, a: number, b: number): number {
  if (!(q > 0 && q < 1)) return q <= 0 ? 0 : 1;
  if (b === 1) return Math.pow(q, 1 / a); // I_x(a, 1) = x^a
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 2000; i++) {
    const mid = (lo + hi) / 2;
    if (mid <= lo || mid >= hi || hi - lo <= 1e-15 * hi) break;
    if (betainc(a, b, mid) < q) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** One-sided (1 - alpha) Clopper-Pearson lower bound; 0 when successes = 0. */
export function clopperPearsonLower(successes: number, trials: number, alpha: number): number {
  if (!(successes >= 0 && successes <= trials && trials > 0)) {
    throw new RangeError(`need 0 <= successes <= trials and trials > 0 (got ${successes}, ${trials})`);
  }
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must lie in (0, 1) (got ${alpha})`);
  if (successes === 0) return 0;
  return betaPpf(alpha, successes, trials - successes + 1);
}

const scratch = new DataView(new ArrayBuffer(8));

/** The largest float below x (x finite, > -max). */
function nextDown(x: number): number {
  if (x === 0) return -Number.MIN_VALUE;
  scratch.setFloat64(0, x);
  const bits = scratch.getBigUint64(0);
  scratch.setBigUint64(0, x > 0 ? bits - 1n : bits + 1n);
  return scratch.getFloat64(0);
}

/** The largest float with `decimals` decimals that is <= value (never rounds up). */
export function roundDown(value: number, decimals = RADIUS_DECIMALS): number {
  if (!Number.isFinite(value)) return value;
  const scale = 10 ** decimals;
  let rounded = Math.floor(value * scale) / scale;
  while (rounded > value) rounded = nextDown(rounded);
  return rounded;
}

/** sigma * Phi^-1(p_lower), rounded down to 6 decimals; 0 below p_lower = 0.5. */
export function radiusFromPLower(pLower: number, sigma: number): number {
  if (!(pLower >= 0.5)) return 0;
  const value = sigma * normPpf(pLower);
  return roundDown(value > 0 ? value : 0);
}

// --- the betting confidence sequence (service/core/betting.py) --------------------------------

export const BETTING_BETS: readonly number[] = [
  1 / 1024, 1 / 128, 1 / 32, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 7 / 8, 15 / 16, 31 / 32, 63 / 64, 127 / 128,
];
export const BETTING_WEIGHTS: readonly number[] = [0.02, 0.02, ...Array<number>(10).fill(0.096)];
const LOG_WEIGHTS = BETTING_WEIGHTS.map(Math.log);
const BISECTION_BITS = 40;
const MARGIN_NATS = 1e-6;

/** log(1/alpha) plus the service's safety margin (nats), growing with the trials. */
export function bettingThreshold(alpha: number, trials: number): number {
  return Math.log(1 / alpha) + MARGIN_NATS * (1 + trials / 1000);
}

/** numpy's pairwise summation order for 12 terms. */
function sum12(v: number[]): number {
  let total = v[0] + v[1] + (v[2] + v[3]) + (v[4] + v[5] + (v[6] + v[7]));
  for (let i = 8; i < v.length; i++) total += v[i];
  return total;
}

function logCapital(base: number[], successes: number, m: number): number {
  const terms = base.map((b, j) => b + successes * Math.log1p(BETTING_BETS[j] * ((1 - m) / m)));
  const top = Math.max(...terms);
  return top + Math.log(sum12(terms.map((t) => Math.exp(t - top))));
}

function base(successes: number, trials: number): number[] {
  return LOG_WEIGHTS.map((lw, j) => lw + (trials - successes) * Math.log1p(-BETTING_BETS[j]));
}

/** log K_t(m) of the grid-Kelly mixture after `successes` of `trials` votes. */
export function bettingLogCapital(successes: number, trials: number, m: number): number {
  if (!(m > 0 && m <= 1)) throw new RangeError("m must lie in (0, 1]");
  return logCapital(base(successes, trials), successes, m);
}

/** Whether the mixture rejects "p <= m" after these counts (capital >= 1/alpha). */
export function bettingRejects(successes: number, trials: number, m: number, alpha: number): boolean {
  return bettingLogCapital(successes, trials, m) >= bettingThreshold(alpha, trials);
}

/** The largest multiple of 2^-40 that the mixture rejects (0 when none is). */
export function bettingLowerBound(successes: number, trials: number, alpha: number): number {
  if (!(successes >= 0 && successes <= trials)) throw new RangeError("need 0 <= successes <= trials");
  if (successes === 0) return 0;
  const limit = bettingThreshold(alpha, trials);
  const b = base(successes, trials);
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < BISECTION_BITS; i++) {
    const mid = (lo + hi) / 2;
    if (logCapital(b, successes, mid) >= limit) lo = mid;
    else hi = mid;
  }
  return lo;
}

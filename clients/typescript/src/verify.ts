/**
 * The offline check of a signed certificate: the same verdict, reason codes and messages as
 * the Python SDK's `verify_certificate` and the service's `dsmooth verify`.
 *
 * A certificate is valid when
 * 1. its `signature` is an Ed25519 signature, by the key of the JWKS (GET /v1/signing-keys)
 *    with the signature's `kid`, over the RFC 8785 canonical JSON of the certificate without
 *    its `signature` and without null members;
 * 2. (with `image` or `imageDigest`) the image is the certified one;
 * 3. its arithmetic holds: `p_lower` is the bound (Clopper-Pearson or the betting confidence
 *    sequence) of the recorded counts at the recorded level, and the radius is
 *    sigma * Phi^-1(p_lower) rounded down to 6 decimals (0 and `abstained` below 0.5).
 *
 * Web Crypto only (Ed25519, SHA-256): Node >= 20 and current browsers.
 */
import { pyEquals, pyFloat, pyFloatRepr, pyInt, pyRepr, pyStr, pyTruthy } from "./python.js";
import {
  bettingLowerBound,
  bettingRejects,
  clopperPearsonLower,
  radiusFromPLower,
} from "./stats.js";

/** Every reason code, in the order the checks run (the same in the Python SDK). */
export const REASON_CODES = [
  "unsigned",
  "unknown_key",
  "bad_signature",
  "image_mismatch",
  "incomplete",
  "bound_malformed",
  "p_lower_mismatch",
  "counts_mismatch",
  "betting_mismatch",
  "unknown_bound",
  "no_bound",
  "radius_mismatch",
] as const;
export type ReasonCode = (typeof REASON_CODES)[number];

/** Why a certificate is not valid: a stable code and the sentence `dsmooth verify` prints. */
export interface Reason {
  code: ReasonCode;
  message: string;
}

export interface Verdict {
  valid: boolean;
  reasons: Reason[];
}

/** A public key as GET /v1/signing-keys publishes it (RFC 8037 OKP / Ed25519). */
export interface SigningKey {
  kty?: string;
  crv?: string;
  x?: string;
  kid?: string;
  use?: string;
  alg?: string;
  [member: string]: unknown;
}

export interface SigningKeySet {
  keys: SigningKey[];
}

/** Decoded 8-bit RGB pixels, row-major, 3 bytes a pixel (as any image decoder gives them). */
export interface ImagePixels {
  width: number;
  height: number;
  rgb: Uint8Array;
}

export interface VerifyOptions {
  /** Also check the image: its decoded pixels (EXIF orientation applied, alpha on white)... */
  image?: ImagePixels;
  /** ...or its digest (the certificate's `image_digest` of the expected image). */
  imageDigest?: string;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function get(object: Json, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (isObject(value)) {
    const out: Json = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = withoutNulls(v);
    return out;
  }
  return value;
}

/** RFC 8785 (JCS): ECMAScript number and string forms, members sorted by UTF-16 code units. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isObject(value)) {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new RangeError("JSON has no NaN or Infinity");
  }
  return JSON.stringify(value);
}

/** The bytes a signature covers. */
export function signedPayload(certificate: Json): Uint8Array {
  const { signature: _signature, ...rest } = certificate;
  return new TextEncoder().encode(canonicalJson(withoutNulls(rest)));
}

function unb64url(text: string): Uint8Array {
  const base64 = text.replaceAll("-", "+").replaceAll("_", "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

// v / 255 as the service's float32, for every byte value v.
const FLOAT32 = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** The service's image digest of decoded RGB pixels: SHA-256 of "(3, H, W)" and the float32
 * [3, H, W] values / 255 (little-endian). */
export async function pixelsDigest(pixels: ImagePixels): Promise<string> {
  const { width, height, rgb } = pixels;
  if (rgb.length !== 3 * width * height) {
    throw new RangeError(`${rgb.length} bytes are not ${width}x${height} RGB pixels`);
  }
  const header = new TextEncoder().encode(`(3, ${height}, ${width})`);
  const body = new DataView(new ArrayBuffer(header.length + 4 * rgb.length));
  new Uint8Array(body.buffer).set(header);
  const plane = width * height;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      body.setFloat32(header.length + 4 * (c * plane + i), FLOAT32[rgb[3 * i + c]], true);
    }
  }
  return hex(await crypto.subtle.digest("SHA-256", body));
}

async function signatureReasons(document: Json, keys: unknown): Promise<Reason[]> {
  const signature = get(document, "signature");
  if (!isObject(signature)) return [{ code: "unsigned", message: "the certificate is not signed" }];
  let candidates: unknown[] = [];
  if (isObject(keys)) {
    const listed = Object.hasOwn(keys, "keys") ? keys.keys : [keys];
    candidates = Array.isArray(listed) ? listed : [];
  }
  const kid = get(signature, "kid");
  const key = candidates.find((k): k is Json => isObject(k) && pyEquals(get(k, "kid"), kid));
  if (key === undefined) {
    return [{ code: "unknown_key", message: `no published key has the id ${pyRepr(kid)}` }];
  }
  try {
    const x = get(key, "x");
    const value = get(signature, "value");
    if (x === undefined || value === undefined) throw new Error("no key or no signature");
    const publicKey = await crypto.subtle.importKey(
      "jwk",
      { kty: "OKP", crv: "Ed25519", x: pyStr(x) },
      { name: "Ed25519" },
      false,
      ["verify"],
    );
    const ok = await crypto.subtle.verify(
      { name: "Ed25519" },
      publicKey,
      unb64url(pyStr(value)) as BufferSource,
      signedPayload(document) as BufferSource,
    );
    if (ok) return [];
  } catch {
    // a malformed key, signature or document: not a valid signature
  }
  return [
    {
      code: "bad_signature",
      message:
        "the signature does not match the certificate (it was changed, or not signed by this key)",
    },
  ];
}

/** Python's math.isclose(a, b, abs_tol=1e-9). */
function isClose(a: number, b: number): boolean {
  if (a === b) return true;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  const diff = Math.abs(a - b);
  return diff <= Math.max(1e-9 * Math.max(Math.abs(a), Math.abs(b)), 1e-9);
}

function candidateKey(document: Json): string | null {
  const candidate = get(document, "candidate");
  const counts = get(document, "top_counts");
  for (const count of Array.isArray(counts) ? counts : []) {
    if (isObject(count) && pyEquals(get(count, "label"), candidate)) return pyStr(get(count, "key"));
  }
  return null;
}

function arithmeticReasons(document: Json): Reason[] {
  let sigma: number;
  let pLower: number;
  let radius: number;
  let abstained: boolean;
  try {
    for (const field of ["sigma", "p_lower", "radius", "abstained"]) {
      if (!Object.hasOwn(document, field)) throw new Error(field);
    }
    sigma = pyFloat(document.sigma);
    pLower = pyFloat(document.p_lower);
    radius = pyFloat(document.radius);
    abstained = pyTruthy(document.abstained);
  } catch {
    return [{ code: "incomplete", message: "the certificate lacks sigma, p_lower, radius or abstained" }];
  }
  const reasons: Reason[] = [];
  const bound = get(document, "bound");
  if (isObject(bound)) {
    const kind = get(bound, "kind");
    let level: number;
    let k: number;
    let n: number;
    try {
      level = pyFloat(get(bound, "alpha") ?? 0);
      k = pyInt(Object.hasOwn(bound, "successes") ? bound.successes : -1);
      n = pyInt(Object.hasOwn(bound, "trials") ? bound.trials : 0);
    } catch {
      [level, k, n] = [NaN, -1, 0];
    }
    const counts = new Map<unknown, unknown>();
    const topCounts = get(document, "top_counts");
    for (const c of Array.isArray(topCounts) ? topCounts : []) {
      if (isObject(c)) counts.set(get(c, "key") ?? null, get(c, "count") ?? null);
    }
    const recordedKey = get(document, "label_key");
    const labelKey = pyTruthy(recordedKey) ? recordedKey : candidateKey(document);
    if (!(k >= 0 && k <= n) || !(level > 0 && level < 1)) {
      reasons.push({ code: "bound_malformed", message: "the recorded bound is malformed" });
    } else if (kind === "clopper-pearson") {
      const value = n > 0 ? clopperPearsonLower(k, n, level) : 0;
      if (!isClose(value, pLower)) {
        reasons.push({
          code: "p_lower_mismatch",
          message: "p_lower is not the Clopper-Pearson bound of the counts",
        });
      }
      if (
        get(document, "mode") === "fixed" &&
        counts.has(labelKey ?? null) &&
        !pyEquals(counts.get(labelKey ?? null), k)
      ) {
        reasons.push({
          code: "counts_mismatch",
          message: "the counts do not match the bound's successes",
        });
      }
    } else if (kind === "betting") {
      if (
        !(
          pLower <= bettingLowerBound(k, n, level) + 1e-12 ||
          (pLower > 0 && pLower <= 1 && bettingRejects(k, n, pLower, level))
        )
      ) {
        reasons.push({
          code: "betting_mismatch",
          message: "p_lower is not excluded by the betting sequence at its counts",
        });
      }
    } else {
      reasons.push({ code: "unknown_bound", message: `unknown bound ${pyRepr(kind)}` });
    }
  } else {
    reasons.push({ code: "no_bound", message: "the certificate records no bound" });
  }
  const expected = pLower < 0.5 ? 0 : radiusFromPLower(pLower, sigma);
  if (abstained !== pLower < 0.5 || !isClose(radius, expected)) {
    reasons.push({
      code: "radius_mismatch",
      message: `the radius should be ${pyFloatRepr(expected)} for p_lower ${pyFloatRepr(pLower)}`,
    });
  }
  return reasons;
}

/**
 * Check a certificate offline against the published keys (a JWKS or one JWK). Pass the JSON
 * object the service sent, as received (the signature covers every member).
 */
export async function verifyCertificate(
  certificate: object,
  keys: SigningKeySet | SigningKey,
  options: VerifyOptions = {},
): Promise<Verdict> {
  const document = certificate as Json;
  const reasons = await signatureReasons(document, keys);
  const digest =
    options.imageDigest ?? (options.image ? await pixelsDigest(options.image) : undefined);
  if (digest !== undefined && get(document, "image_digest") !== digest) {
    reasons.push({
      code: "image_mismatch",
      message: "the image is not the certified one (its digest differs)",
    });
  }
  reasons.push(...arithmeticReasons(document));
  return { valid: reasons.length === 0, reasons };
}

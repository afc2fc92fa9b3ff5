/**
 * What tests/test_sdk_verify.py and tests/test_sdk_typescript.py ask of the TypeScript SDK:
 * one JSON request on stdin, one JSON answer on stdout (run from dist/: `node dist/test/harness.js`).
 */
import { readFile } from "node:fs/promises";

import {
  bettingLowerBound,
  bettingRejects,
  clopperPearsonLower,
  DsmoothClient,
  type ImagePixels,
  type JobEvent,
  normPpf,
  pixelsDigest,
  ProblemError,
  radiusFromPLower,
  type SigningKeySet,
  VERSION,
  verifyCertificate,
} from "../src/index.js";
import { pyFloatRepr, pyRepr } from "../src/python.js";

interface EncodedPixels {
  width: number;
  height: number;
  rgb: string; // base64
}

type Request =
  | {
      op: "verify";
      cases: {
        certificate: object;
        keys: SigningKeySet;
        imageDigest?: string;
        image?: EncodedPixels;
      }[];
    }
  | {
      op: "stats";
      cp: [number, number, number][];
      ppf: number[];
      betting: [number, number, number][];
      radius: [number, number][];
    }
  | { op: "format"; floats: number[]; values: unknown[] }
  | { op: "digest"; images: EncodedPixels[] }
  | { op: "events"; baseUrl: string; image: string; n: number }
  | { op: "certify-and-verify"; baseUrl: string; image: string; n: number }
  | { op: "version" };

function pixels(encoded: EncodedPixels): ImagePixels {
  return { width: encoded.width, height: encoded.height, rgb: Buffer.from(encoded.rgb, "base64") };
}

async function answer(request: Request): Promise<unknown> {
  switch (request.op) {
    case "verify":
      return Promise.all(
        request.cases.map((c) =>
          verifyCertificate(c.certificate, c.keys, {
            imageDigest: c.imageDigest,
            image: c.image ? pixels(c.image) : undefined,
          }),
        ),
      );
    case "stats":
      return {
        cp: request.cp.map(([k, n, a]) => clopperPearsonLower(k, n, a)),
        ppf: request.ppf.map(normPpf),
        betting: request.betting.map(([k, n, a]) => {
          const bound = bettingLowerBound(k, n, a);
          return [bound, bound > 0 ? bettingRejects(k, n, bound, a) : null];
        }),
        radius: request.radius.map(([p, s]) => radiusFromPLower(p, s)),
      };
    case "format":
      return { floats: request.floats.map(pyFloatRepr), values: request.values.map(pyRepr) };
    case "digest":
      return Promise.all(request.images.map((image) => pixelsDigest(pixels(image))));
    case "events": {
      // Cancel the job at its first progress event: only a client that streams sees one
      // before the job has finished, so the job must end cancelled.
      const client = new DsmoothClient({ baseUrl: request.baseUrl });
      const job = await client.createJob(await readFile(request.image), { n: request.n, n0: 100 });
      const events: JobEvent[] = [];
      for await (const ev of client.events(job.id)) {
        events.push(ev);
        if (ev.event === "progress" && events.length === 1) await client.cancelJob(job.id);
      }
      let missing: string | null = null;
      try {
        for await (const ev of client.events("no-such-job")) events.push(ev);
      } catch (error) {
        missing = error instanceof ProblemError ? error.message : String(error);
      }
      return { events, missing };
    }
    case "certify-and-verify": {
      const client = new DsmoothClient({ baseUrl: request.baseUrl });
      const certificate = await client.certify(await readFile(request.image), { n: request.n, n0: 50 });
      return { certificate, verdict: await client.verify(certificate) };
    }
    case "version":
      return VERSION;
  }
}

const chunks: Buffer[] = [];
for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
const request = JSON.parse(Buffer.concat(chunks).toString()) as Request;
process.stdout.write(JSON.stringify(await answer(request)));

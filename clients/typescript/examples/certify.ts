/**
 * Certify an image with the TypeScript client:
 *   node dist/examples/certify.js http://127.0.0.1:8000 photo.png [n]
 */
import { readFile } from "node:fs/promises";

import { DsmoothClient, ProblemError } from "../src/index.js";

const [baseUrl, path, n = "1000"] = process.argv.slice(2);
if (!baseUrl || !path) {
  console.error("usage: node dist/examples/certify.js BASE_URL IMAGE [N]");
  process.exit(2);
}
const client = new DsmoothClient({ baseUrl, apiKey: process.env.DSMOOTH_API_KEY });
try {
  const certificate = await client.certify(await readFile(path), { n: Number(n), sigma: 0.25 });
  console.log(JSON.stringify(certificate));
} catch (error) {
  if (error instanceof ProblemError) {
    console.error(`problem: ${error.message}`);
    process.exit(1);
  }
  throw error;
}

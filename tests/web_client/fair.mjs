#!/usr/bin/env node
// Checks web-client/fair.js against vectors computed on the server's side: run by
// tests/integration/web_fair.rs as `node tests/web_client/fair.mjs VECTORS.json`. Both hashing paths
// are checked: WebCrypto (Node's crypto.subtle, as in a browser on a secure origin) and
// the pure-JS fallback (plain http on a LAN address). Prints one line per failure and a
// summary; exits non-zero on any failure.

import fs from 'node:fs';
import {
  crashPoint, crashPointOfDigest, hmacSha256, hmacSha256Fallback, sha256, sha256Hex, toHex, usingWebCrypto,
} from '../../web-client/fair.js';

const vectors = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const encoder = new TextEncoder();
let checks = 0;
let failures = 0;

function expectEqual(what, actual, expected) {
  checks++;
  if (actual !== expected) {
    failures++;
    console.log(`FAIL ${what}: got ${actual}, expected ${expected}`);
  }
}

if (!usingWebCrypto) {
  console.log('FAIL crypto.subtle is missing: the WebCrypto path cannot be checked');
  process.exit(1);
}
for (const { text, sha256_hex: expected } of vectors.sha256) {
  const label = `sha256 of ${text.length} characters`;
  expectEqual(`${label} (WebCrypto)`, await sha256Hex(text), expected);
  expectEqual(`${label} (pure JS)`, toHex(sha256(encoder.encode(text))), expected);
}
for (const { key, message, hmac_hex: expected } of vectors.hmac) {
  const label = `hmac with a ${key.length}-character key, ${message.length}-character message`;
  expectEqual(`${label} (WebCrypto)`, toHex(await hmacSha256(key, message)), expected);
  expectEqual(`${label} (pure JS)`, toHex(hmacSha256Fallback(encoder.encode(key), encoder.encode(message))), expected);
}
for (const { round_hash: hash, salt, house_edge_bp: edge, crash_hundredths: expected } of vectors.crash_points) {
  const label = `crash point of ${hash.slice(0, 12)}… at ${edge} bp`;
  expectEqual(`${label} (WebCrypto)`, await crashPoint(hash, salt, edge), expected);
  const digest = hmacSha256Fallback(encoder.encode(hash), encoder.encode(salt));
  expectEqual(`${label} (pure JS)`, crashPointOfDigest(digest, edge), expected);
}

console.log(`${checks - failures} of ${checks} checks passed`);
process.exit(failures ? 1 : 0);

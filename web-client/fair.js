// Provably-fair arithmetic, recomputed in the browser (mirrors src/fair.rs).
//
//   crash = max(100, floor((10000 - edge_bp) · 2^52 / (100 · (2^52 - r)))) hundredths,
//   r = first 52 bits of HMAC-SHA256(key = round hash hex text, message = salt).
//   chain: sha256_hex(hash of round n) == hash of round n-1; for round 1 == commitment.
//
// All arithmetic is BigInt. WebCrypto does the hashing; on an insecure origin (plain
// http on a LAN address, where crypto.subtle is unavailable) a small pure-JS SHA-256
// takes over so the page still works. tests/web_fair.rs checks both paths against
// vectors computed by the server's own crates (sha2, hmac) and crash-point function.

const encoder = new TextEncoder();
const subtle = globalThis.crypto?.subtle;

export const usingWebCrypto = Boolean(subtle);

export function toHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** SHA-256 of a UTF-8 string, as lowercase hex. */
export async function sha256Hex(text) {
  const data = encoder.encode(text);
  if (subtle) return toHex(await subtle.digest('SHA-256', data));
  return toHex(sha256(data));
}

/** HMAC-SHA256(key, message) over UTF-8 strings, as bytes. */
export async function hmacSha256(keyText, messageText) {
  const key = encoder.encode(keyText);
  const message = encoder.encode(messageText);
  if (subtle) {
    const k = await subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return new Uint8Array(await subtle.sign('HMAC', k, message));
  }
  return hmacSha256Fallback(key, message);
}

const TWO_52 = 1n << 52n;

/** Crash point in hundredths (a Number; always fits) of a round hash. */
export async function crashPoint(roundHashHex, salt, houseEdgeBp) {
  return crashPointOfDigest(await hmacSha256(roundHashHex, salt), houseEdgeBp);
}

/** Crash point in hundredths of a round's HMAC-SHA256 digest (bytes). */
export function crashPointOfDigest(digest, houseEdgeBp) {
  let first64 = 0n;
  for (let i = 0; i < 8; i++) first64 = (first64 << 8n) | BigInt(digest[i]);
  const r = first64 >> 12n; // first 52 bits
  const numerator = BigInt(10000 - houseEdgeBp) * TWO_52;
  const denominator = 100n * (TWO_52 - r);
  const crash = numerator / denominator;
  return Number(crash < 100n ? 100n : crash);
}

export function isHash(text) {
  return /^[0-9a-f]{64}$/.test(text);
}

// ------------------------------------------------------------ pure-JS fallback

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** SHA-256 of bytes (FIPS 180-4), returns Uint8Array(32). */
export function sha256(bytes) {
  const length = bytes.length;
  const padded = new Uint8Array(((length + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(length / 0x20000000));
  view.setUint32(padded.length - 4, (length << 3) >>> 0);
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const W = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let offset = 0; offset < padded.length; offset += 64) {
    for (let i = 0; i < 16; i++) W[i] = view.getUint32(offset + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(W[i - 15], 7) ^ rotr(W[i - 15], 18) ^ (W[i - 15] >>> 3);
      const s1 = rotr(W[i - 2], 17) ^ rotr(W[i - 2], 19) ^ (W[i - 2] >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let i = 0; i < 64; i++) {
      const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const ch = (e & f) ^ (~e & g);
      const t1 = (h + S1 + ch + K[i] + W[i]) >>> 0;
      const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) >>> 0;
      h = g; g = f; f = e; e = (d + t1) >>> 0;
      d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  H.forEach((word, i) => outView.setUint32(i * 4, word));
  return out;
}

/** HMAC-SHA256 (RFC 2104) of bytes with the pure-JS SHA-256, returns Uint8Array(32). */
export function hmacSha256Fallback(key, message) {
  let k = key.length > 64 ? sha256(key) : key;
  const block = new Uint8Array(64);
  block.set(k);
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = block[i] ^ 0x36;
    outer[i] = block[i] ^ 0x5c;
  }
  inner.set(message, 64);
  outer.set(sha256(inner), 64);
  k = null;
  return sha256(outer);
}

// S3 requests signed in the browser (AWS Signature V4) with the API key's S3 credentials, which are
// HMAC-SHA256 derivations of the key (inferline.keys.s3_credentials). Plain-JS SHA-256 so it also works on
// plain-HTTP origins where WebCrypto is unavailable. Bodies are sent as UNSIGNED-PAYLOAD.
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);
const enc = new TextEncoder();
const bytes = (x) => (typeof x === "string" ? enc.encode(x) : x);

export function sha256(input) {
  const data = bytes(input);
  const bitLen = data.length * 8;
  const padded = new Uint8Array(((data.length + 9 + 63) >> 6) << 6);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLen / 0x100000000));
  view.setUint32(padded.length - 4, bitLen >>> 0);
  const hs = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, hh] = hs;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    hs[0] += a; hs[1] += b; hs[2] += c; hs[3] += d; hs[4] += e; hs[5] += f; hs[6] += g; hs[7] += hh;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  hs.forEach((v, i) => ov.setUint32(i * 4, v));
  return out;
}

export function hmac(key, message) {
  let k = bytes(key);
  if (k.length > 64) k = sha256(k);
  const block = new Uint8Array(64);
  block.set(k);
  const inner = new Uint8Array(64 + bytes(message).length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) { inner[i] = block[i] ^ 0x36; outer[i] = block[i] ^ 0x5c; }
  inner.set(bytes(message), 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

export const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function base32(data) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0, out = "";
  for (const byte of data) {
    value = (value << 8) | byte; bits += 8;
    while (bits >= 5) { out += alphabet[(value >>> (bits - 5)) & 31]; bits -= 5; }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** The API key's S3 access key id and secret, as the server derives them. */
export function s3Credentials(apiKey) {
  return {
    accessKeyId: "IL" + base32(hmac(apiKey, "inferline-s3-access-key-id")).slice(0, 18),
    secret: hex(hmac(apiKey, "inferline-s3")),
  };
}

const encode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());

/** A signed fetch to the S3 endpoint: `bucket`, optional `key`, `query` as an object; `signal` aborts it. */
export async function s3(apiKey, method, bucket, key = "", { query = {}, body, headers = {}, signal } = {}) {
  const { accessKeyId, secret } = s3Credentials(apiKey);
  const path = "/s3/" + [bucket, ...(key ? key.split("/") : [])].filter((p, i) => i === 0 ? p : true).map(encode).join("/");
  const canonicalQuery = Object.keys(query).sort().map((k) => `${encode(k)}=${encode(String(query[k]))}`).join("&");
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const date = amzDate.slice(0, 8);
  const signed = { host: location.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": amzDate };
  const names = Object.keys(signed).sort();
  const canonical = [method, bucket ? path : "/s3/", canonicalQuery, names.map((n) => `${n}:${signed[n]}\n`).join(""),
    names.join(";"), "UNSIGNED-PAYLOAD"].join("\n");
  const scope = `${date}/us-east-1/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, hex(sha256(canonical))].join("\n");
  let signingKey = hmac("AWS4" + secret, date);
  for (const part of ["us-east-1", "s3", "aws4_request"]) signingKey = hmac(signingKey, part);
  const authorization = `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, ` +
    `Signature=${hex(hmac(signingKey, toSign))}`;
  const url = (bucket ? path : "/s3/") + (canonicalQuery ? "?" + canonicalQuery : "");
  const response = await fetch(url, {
    method, body, signal, credentials: "omit",
    headers: { ...headers, Authorization: authorization, "x-amz-date": amzDate, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
  });
  const text = await response.text();
  const xml = text ? new DOMParser().parseFromString(text, "application/xml") : null;
  if (!response.ok) {
    const message = xml && xml.querySelector("Message");
    throw new Error(`S3 ${response.status}: ${message ? message.textContent : response.statusText}`);
  }
  return xml;
}

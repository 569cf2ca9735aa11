// Makes DPoP proofs (RFC 9449) with jose, an independent JOSE implementation, for ward's
// interop tests: a client's key pair, its RFC 7638 thumbprint (what a bound token's
// `cnf.jkt` names), and one proof per request, signed by that key.
//
// Input on stdin, one JSON object:
//   {"alg": "ES256", "key": <private JWK, optional>, "requests": [{"method", "url", "token"?}]}
// Without `key` a new key pair is generated for `alg`; pass the `key` a first run printed
// to sign later proofs with the same key. Output on stdout, one JSON line:
//   {"jkt": "<thumbprint>", "key": <private JWK>, "proofs": ["<compact JWS>", ...]}
// Each proof has header {typ: "dpop+jwt", alg, jwk: <public JWK>} and claims {htm, htu
// (the URL without query and fragment), iat (now), jti (random), ath (base64url SHA-256
// of the token, when one is given)}.

import { createHash, randomUUID } from 'node:crypto';

import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

const input = await readStdin();
const alg = input.alg;
let privateJwk = input.key;
if (!privateJwk) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  privateJwk = await exportJWK(privateKey);
}
const privateKey = await importJWK(privateJwk, alg);
// The public members only: what a proof's header carries.
const { d, p, q, dp, dq, qi, ...publicJwk } = privateJwk;
const jkt = await calculateJwkThumbprint(publicJwk, 'sha256');

const proofs = [];
for (const { method, url, token } of input.requests) {
  const htu = url.split(/[?#]/)[0];
  const claims = { htm: method, htu, jti: randomUUID() };
  if (token) claims.ath = createHash('sha256').update(token).digest('base64url');
  proofs.push(
    await new SignJWT(claims)
      .setProtectedHeader({ typ: 'dpop+jwt', alg, jwk: publicJwk })
      .setIssuedAt()
      .sign(privateKey),
  );
}
process.stdout.write(`${JSON.stringify({ jkt, key: privateJwk, proofs })}\n`);

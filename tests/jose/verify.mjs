// Verifies tokens with jose (an independent JOSE implementation), as a service in
// another language would verify the tokens ward mints: the issuer's OpenID discovery
// document names the JWKS, the JWKS is fetched over HTTP, and jwtVerify checks the
// signature, `typ`, `iss`, `aud` and `exp`.
//
// Input on stdin, one JSON object:
//   {"cases": [{"name", "issuer", "audience", "token", "now"}]}
// where `now` is the unix time to judge `exp` by. Output on stdout, one JSON line:
//   {"results": [{"name", "ok": true, "header", "payload"}
//              | {"name", "ok": false, "code", "message"}]}
// A case that does not verify is a result, not a failure of the script; anything else
// (bad input, a discovery document that does not name its issuer) exits non-zero.

import { createRemoteJWKSet, jwtVerify } from 'jose';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// One key set per issuer, found through its discovery document.
const keySets = new Map();

async function keysOf(issuer) {
  if (!keySets.has(issuer)) {
    const url = `${issuer}/.well-known/openid-configuration`;
    const res = await fetch(url);
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    const doc = await res.json();
    if (doc.issuer !== issuer) {
      throw new Error(`${url} names issuer ${JSON.stringify(doc.issuer)}, not ${issuer}`);
    }
    keySets.set(issuer, createRemoteJWKSet(new URL(doc.jwks_uri)));
  }
  return keySets.get(issuer);
}

async function verify({ name, issuer, audience, token, now }) {
  const keys = await keysOf(issuer);
  try {
    const { payload, protectedHeader } = await jwtVerify(token, keys, {
      issuer,
      audience,
      typ: 'JWT',
      currentDate: new Date(now * 1000),
    });
    return { name, ok: true, header: protectedHeader, payload };
  } catch (e) {
    return { name, ok: false, code: e.code ?? 'ERR_UNKNOWN', message: String(e.message) };
  }
}

const { cases } = await readStdin();
const results = [];
for (const c of cases) results.push(await verify(c));
process.stdout.write(`${JSON.stringify({ results })}\n`);

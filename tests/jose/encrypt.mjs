// Encrypts nested JWTs with jose (an independent JOSE implementation), as an identity
// provider that encrypts its access tokens would: the recipient's public key only, the
// protected header as given (alg, enc, cty, kid, ...), compact serialization.
//
// Input on stdin, one JSON object:
//   {"cases": [{"name", "key", "header", "plaintext"}]}
// where `key` is the recipient's key: a PEM (private key, whose public half alone is
// used) or, for `dir` and bare key wrap, a base64url secret; `header` the protected
// header; `plaintext` the text to encrypt (a JWS, for a nested JWT). Output on stdout,
// one JSON line: {"results": [{"name", "jwe"}]}. Any failure exits non-zero.

import { createPrivateKey, createPublicKey, createSecretKey } from 'node:crypto';
import { CompactEncrypt } from 'jose';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function recipient(key) {
  if (key.includes('-----BEGIN')) return createPublicKey(createPrivateKey(key));
  return createSecretKey(Buffer.from(key, 'base64url'));
}

const { cases } = await readStdin();
const results = [];
for (const c of cases) {
  const jwe = await new CompactEncrypt(new TextEncoder().encode(c.plaintext))
    .setProtectedHeader(c.header)
    .encrypt(recipient(c.key));
  results.push({ name: c.name, jwe });
}
process.stdout.write(JSON.stringify({ results }) + '\n');

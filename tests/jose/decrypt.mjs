// Decrypts JWEs with jose (an independent JOSE implementation), as the recipient of a
// nested JWT that `ward token sign --encrypt-to` made would: the private key, the
// algorithms ward may use, compact serialization.
//
// Input on stdin, one JSON object:
//   {"cases": [{"name", "key", "jwe"}]}
// where `key` is the recipient's private key as PEM. Output on stdout, one JSON line:
//   {"results": [{"name", "ok": true, "header", "plaintext"}
//              | {"name", "ok": false, "code", "message"}]}

import { createPrivateKey } from 'node:crypto';
import { compactDecrypt } from 'jose';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

const allowed = {
  keyManagementAlgorithms: ['RSA-OAEP-256', 'ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A256KW'],
  contentEncryptionAlgorithms: ['A128GCM', 'A256GCM'],
};
const { cases } = await readStdin();
const results = [];
for (const c of cases) {
  try {
    const { plaintext, protectedHeader } = await compactDecrypt(c.jwe, createPrivateKey(c.key), allowed);
    results.push({ name: c.name, ok: true, header: protectedHeader, plaintext: new TextDecoder().decode(plaintext) });
  } catch (e) {
    results.push({ name: c.name, ok: false, code: e.code ?? 'ERROR', message: String(e.message) });
  }
}
process.stdout.write(JSON.stringify({ results }) + '\n');

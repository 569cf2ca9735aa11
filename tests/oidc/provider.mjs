// A real OpenID provider (the certified `oidc-provider` package) for ward's interop tests
// (tests/oidc_provider.rs). Development use only: fixed client secrets, in-memory storage.
//
// It listens on 127.0.0.1 with an ephemeral port and, once it serves, prints one JSON
// line on stdout: {"issuer": "http://127.0.0.1:<port>"}. It exits when its stdin closes,
// so it never outlives the test that started it.
//
// What it serves, beside the provider's own endpoints (discovery, /jwks, /auth, /token,
// /token/introspection, /token/revocation):
// - resource servers (RFC 8707 resource indicators), all with audience `api` and scopes
//   `read write`: `https://api.ward.test/jwt/<ALG>` issues RFC 9068 JWT access tokens
//   signed with <ALG> (RS256, PS256, ES256, ES384, EdDSA), `https://api.ward.test/opaque`
//   opaque ones, `https://other.ward.test/jwt` JWTs for audience `other`;
// - clients: `app` (secret `app-secret`: authorization code, refresh token, client
//   credentials) and `ward` (secret `ward-secret`: what ward introspects with);
// - DPoP (RFC 9449): a token request carrying a `DPoP` proof gets a DPoP-bound access
//   token (`cnf.jkt`, token_type DPoP);
// - test controls under /test/ (JSON in, JSON out):
//   POST /test/code {login, resource, scope}: drives the authorization-code flow over
//     HTTP as a browser would (the provider's development login and consent pages), then
//     redeems the code; answers the token endpoint's response;
//   POST /test/rotate {alg}: replaces the signing key that serves <alg> with a new one
//     (new kid) and serves the new key set at once; answers {removed, added} (the kids).
//
// Keys are generated as PEM and imported (createPrivateKey), one per family: RSA 2048
// (RS256 and PS256), P-256, P-384 and Ed25519.

import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

// stdout carries only the line that says where the provider serves: the package's notices
// (console.info) go to stderr with its warnings.
console.info = console.error;
console.log = console.error;

const RESOURCE = 'https://api.ward.test';
const REDIRECT_URI = 'http://127.0.0.1/callback';

// === keys ===

const FAMILY_OF_ALG = {
  RS256: 'rsa',
  PS256: 'rsa',
  ES256: 'p256',
  ES384: 'p384',
  EdDSA: 'ed25519',
};

function generatePem(family) {
  const [type, options] = {
    rsa: ['rsa', { modulusLength: 2048 }],
    p256: ['ec', { namedCurve: 'P-256' }],
    p384: ['ec', { namedCurve: 'P-384' }],
    ed25519: ['ed25519', {}],
  }[family];
  const { privateKey } = generateKeyPairSync(type, {
    ...options,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return privateKey;
}

// family -> {kid, pem}; the kid names the family and its generation.
const keys = {};
const generation = {};

function newKey(family) {
  generation[family] = (generation[family] ?? 0) + 1;
  keys[family] = { kid: `${family}-${generation[family]}`, pem: generatePem(family) };
}

for (const family of new Set(Object.values(FAMILY_OF_ALG))) {
  newKey(family);
}

function jwks() {
  return {
    keys: Object.values(keys).map(({ kid, pem }) => ({
      ...createPrivateKey(pem).export({ format: 'jwk' }),
      kid,
      use: 'sig',
    })),
  };
}

// === provider ===

function resourceServer(indicator) {
  const common = { audience: 'api', scope: 'read write', accessTokenTTL: 600 };
  if (indicator === `${RESOURCE}/opaque`) {
    return { ...common, accessTokenFormat: 'opaque' };
  }
  if (indicator === 'https://other.ward.test/jwt') {
    return { ...common, audience: 'other', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
  }
  const alg = indicator.startsWith(`${RESOURCE}/jwt/`) && indicator.slice(`${RESOURCE}/jwt/`.length);
  if (alg && FAMILY_OF_ALG[alg]) {
    return { ...common, accessTokenFormat: 'jwt', jwt: { sign: { alg } } };
  }
  throw new errors.InvalidTarget();
}

function build(issuer) {
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'app',
        client_secret: 'app-secret',
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
        response_types: ['code'],
        redirect_uris: [REDIRECT_URI],
      },
      {
        client_id: 'ward',
        client_secret: 'ward-secret',
        grant_types: [],
        response_types: [],
        redirect_uris: [],
      },
    ],
    jwks: jwks(),
    cookies: { keys: ['ward-interop-cookie-key'] },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      // RFC 9449: a token request with a DPoP proof gets a token bound to its key.
      dPoP: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // The token endpoint issues for the resource the authorization granted.
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => resourceServer(indicator),
      },
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      ClientCredentials: 600,
      Grant: 600,
      IdToken: 600,
      Interaction: 600,
      RefreshToken: 600,
      Session: 600,
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));
  return provider;
}

// === the authorization-code flow, as a browser drives it ===

async function codeFlow(issuer, { login, resource, scope }) {
  const jar = new Map();
  const send = async (url, init = {}) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(new URL(url, issuer), {
      ...init,
      headers: { ...init.headers, ...(cookie ? { cookie } : {}) },
      redirect: 'manual',
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const at = pair.indexOf('=');
      const [name, value] = [pair.slice(0, at), pair.slice(at + 1)];
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(c)) jar.delete(name);
      else jar.set(name, value);
    }
    return res;
  };

  const auth = new URL('/auth', issuer);
  const params = {
    client_id: 'app',
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope,
    resource,
    // offline_access (a refresh token) is granted only when consent is asked for.
    prompt: 'consent',
    state: 'ward-interop',
  };
  for (const [k, v] of Object.entries(params)) auth.searchParams.set(k, v);

  let res = await send(auth);
  for (let step = 0; step < 10; step += 1) {
    const location = res.headers.get('location');
    if (!location) {
      throw new Error(`code flow: ${res.status} without a redirect: ${await res.text()}`);
    }
    const next = new URL(location, issuer);
    if (next.href.startsWith(REDIRECT_URI)) {
      const code = next.searchParams.get('code');
      if (!code) throw new Error(`code flow refused: ${next.search}`);
      const token = await fetch(new URL('/token', issuer), {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from('app:app-secret').toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: REDIRECT_URI,
          resource,
        }),
      });
      return { status: token.status, body: await token.json() };
    }
    if (next.pathname.startsWith('/interaction/')) {
      const page = await (await send(next)).text();
      const prompt = /name="prompt" value="([a-z]+)"/.exec(page)?.[1];
      const form = prompt === 'login' ? { prompt, login } : { prompt };
      res = await send(next, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form),
      });
    } else {
      res = await send(next);
    }
  }
  throw new Error('code flow: too many redirects');
}

// === server ===

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'));
      } catch (e) {
        reject(e);
      }
    });
    req.on('error', reject);
  });
}

let handle; // the current provider's request handler
let issuer;

async function control(req, res) {
  const answer = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  try {
    const input = await readJson(req);
    if (req.method === 'POST' && req.url === '/test/code') {
      const { status, body } = await codeFlow(issuer, input);
      return answer(status, body);
    }
    if (req.method === 'POST' && req.url === '/test/rotate') {
      const family = FAMILY_OF_ALG[input.alg];
      if (!family) return answer(400, { error: `no key serves ${input.alg}` });
      const removed = keys[family].kid;
      newKey(family);
      // Storage is shared by every Provider in this process: tokens and grants survive.
      handle = build(issuer).callback();
      return answer(200, { removed, added: keys[family].kid });
    }
    return answer(404, { error: 'no such control' });
  } catch (e) {
    return answer(500, { error: String(e?.stack ?? e) });
  }
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/test/')) {
    control(req, res);
  } else {
    handle(req, res);
  }
});

server.listen(0, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  handle = build(issuer).callback();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

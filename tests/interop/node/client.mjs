// Interop: obtain a Mandate token with `jose` (a private_key_jwt assertion signed EdDSA, sent
// with fetch) and verify it through the JWKS with jose's createRemoteJWKSet + jwtVerify,
// requiring typ at+jwt. Optionally introspect the token.
//
// Usage: node client.mjs ISSUER CLIENT_ID PRIVATE_JWK_FILE [SCOPE]
// Prints one JSON object: token_type, expires_in and the verified claims (never the token).
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { SignJWT, importJWK, createRemoteJWKSet, jwtVerify } from 'jose';

const [issuer, clientId, keyFile, scope] = process.argv.slice(2);
const meta = await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json();
const jwk = JSON.parse(readFileSync(keyFile, 'utf8'));
const key = await importJWK(jwk, 'EdDSA');

async function assertion() {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'EdDSA', kid: jwk.kid, typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(meta.issuer)
    .setIssuedAt()
    .setExpirationTime('60s')
    .setJti(randomUUID())
    .sign(key);
}

const form = new URLSearchParams({
  grant_type: 'client_credentials',
  client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  client_assertion: await assertion(),
});
if (scope) form.set('scope', scope);
const res = await fetch(meta.token_endpoint, { method: 'POST', body: form });
const body = await res.json();
if (!res.ok) {
  console.log(JSON.stringify({ status: res.status, error: body.error, error_description: body.error_description }));
  process.exit(1);
}
if (process.env.TOKEN_OUT) {
  // For the revocation check that follows (a test file in a temp folder, mode 0600).
  (await import('node:fs')).writeFileSync(process.env.TOKEN_OUT, body.access_token, { mode: 0o600 });
}
const jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
const { payload, protectedHeader } = await jwtVerify(body.access_token, jwks, {
  issuer: meta.issuer,
  typ: 'at+jwt',
  algorithms: ['EdDSA'],
  requiredClaims: ['exp', 'iat', 'sub', 'aud', 'jti', 'client_id'],
});
const intro = await fetch(meta.introspection_endpoint, {
  method: 'POST',
  body: new URLSearchParams({
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await assertion(),
    token: body.access_token,
  }),
});
console.log(JSON.stringify({
  token_type: body.token_type,
  expires_in: body.expires_in,
  kid: protectedHeader.kid,
  claims: payload,
  introspection: await intro.json(),
}));

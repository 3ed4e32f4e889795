// Interop: obtain a Mandate token with openid-client exactly as it ships (its PrivateKeyJwt
// client authentication: 60 s assertions addressed to the issuer, alg from the key, Ed25519;
// discovery from /.well-known/oauth-authorization-server), introspect it with openid-client,
// and verify it through the JWKS with jose's createRemoteJWKSet + jwtVerify, requiring
// typ at+jwt. Only plain HTTP needs allowing (the endpoint is on loopback).
//
// Usage: node client.mjs ISSUER CLIENT_ID PRIVATE_JWK_FILE [SCOPE]
// Prints one JSON object: token_type, expires_in, the verified claims and the introspection
// answer (never the token); on a refusal, {status, error, error_description} and exit 1.
import { readFileSync, writeFileSync } from 'node:fs';
import * as client from 'openid-client';
import { importJWK, createRemoteJWKSet, jwtVerify } from 'jose';

const [issuer, clientId, keyFile, scope] = process.argv.slice(2);
const jwk = JSON.parse(readFileSync(keyFile, 'utf8'));
const key = await importJWK(jwk, jwk.alg ?? 'EdDSA');
const config = await client.discovery(
  new URL(issuer),
  clientId,
  undefined,
  client.PrivateKeyJwt({ key, kid: jwk.kid }),
  { algorithm: 'oauth2', execute: [client.allowInsecureRequests] },
);
let tokens;
try {
  tokens = await client.clientCredentialsGrant(config, scope ? { scope } : {});
} catch (e) {
  console.log(JSON.stringify(refusal(e)));
  process.exit(1);
}
if (process.env.TOKEN_OUT) {
  // For the revocation check that follows (a test file in a temp folder, mode 0600).
  writeFileSync(process.env.TOKEN_OUT, tokens.access_token, { mode: 0o600 });
}
const meta = config.serverMetadata();
const jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
  issuer: meta.issuer,
  typ: 'at+jwt',
  algorithms: ['EdDSA'],
  requiredClaims: ['exp', 'iat', 'sub', 'aud', 'jti', 'client_id'],
});
const introspection = await client.tokenIntrospection(config, tokens.access_token);
console.log(JSON.stringify({
  token_type: tokens.token_type,
  expires_in: tokens.expires_in,
  kid: protectedHeader.kid,
  claims: payload,
  introspection,
}));

// A refusal as {status, error, error_description, scheme}. A 401 carries a WWW-Authenticate
// challenge, which openid-client reports as a WWWAuthenticateChallengeError whose `cause` holds
// the parsed challenges (the error code is a parameter of the challenge).
function refusal(e) {
  const challenge = Array.isArray(e.cause) ? e.cause[0] : undefined;
  return {
    status: e.status,
    error: e.error ?? challenge?.parameters?.error,
    error_description: e.error_description ?? challenge?.parameters?.error_description,
    scheme: challenge?.scheme,
  };
}

// Introspect a token (read from a file) as CLIENT_ID with openid-client's defaults
// (PrivateKeyJwt client authentication). Prints the HTTP status and the introspection answer.
//
// Usage: node introspect.mjs ISSUER CLIENT_ID PRIVATE_JWK_FILE TOKEN_FILE
import { readFileSync } from 'node:fs';
import * as client from 'openid-client';
import { importJWK } from 'jose';

const [issuer, clientId, keyFile, tokenFile] = process.argv.slice(2);
const jwk = JSON.parse(readFileSync(keyFile, 'utf8'));
const config = await client.discovery(
  new URL(issuer),
  clientId,
  undefined,
  client.PrivateKeyJwt({ key: await importJWK(jwk, jwk.alg ?? 'EdDSA'), kid: jwk.kid }),
  { algorithm: 'oauth2', execute: [client.allowInsecureRequests] },
);
try {
  const body = await client.tokenIntrospection(config, readFileSync(tokenFile, 'utf8').trim());
  console.log(JSON.stringify({ status: 200, body }));
} catch (e) {
  console.log(JSON.stringify(refusal(e)));
  process.exit(1);
}

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

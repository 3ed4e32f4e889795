// Introspect a token (read from a file) as CLIENT_ID, authenticating with private_key_jwt
// signed by jose. Prints the introspection response.
//
// Usage: node introspect.mjs ISSUER CLIENT_ID PRIVATE_JWK_FILE TOKEN_FILE
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { SignJWT, importJWK } from 'jose';

const [issuer, clientId, keyFile, tokenFile] = process.argv.slice(2);
const meta = await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json();
const jwk = JSON.parse(readFileSync(keyFile, 'utf8'));
const assertion = await new SignJWT({})
  .setProtectedHeader({ alg: 'EdDSA', kid: jwk.kid })
  .setIssuer(clientId)
  .setSubject(clientId)
  .setAudience(meta.token_endpoint)
  .setIssuedAt()
  .setExpirationTime('60s')
  .setJti(randomUUID())
  .sign(await importJWK(jwk, 'EdDSA'));
const res = await fetch(meta.introspection_endpoint, {
  method: 'POST',
  body: new URLSearchParams({
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
    token: readFileSync(tokenFile, 'utf8').trim(),
  }),
});
console.log(JSON.stringify({ status: res.status, body: await res.json() }));

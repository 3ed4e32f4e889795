// The benchmark peer: node oidc-provider (a certified OAuth server) configured as FACTS.md
// describes, issuing EdDSA at+jwt access tokens for client_credentials with private_key_jwt.
// In-memory adapter (oidc-provider's default), which favours it: Mandate commits every token
// and its audit event durably.
//
// Usage: node server.mjs PORT CLIENT_ID CLIENT_PUBLIC_JWK_FILE
import { readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, clientId, clientJwkFile] = process.argv.slice(2);
const clientJwk = JSON.parse(readFileSync(clientJwkFile, 'utf8'));
const { d, ...publicJwk } = clientJwk; // only the public part goes to the provider
const issuerKey = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
const resource = 'https://api.github.com';

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'EdDSA',
    id_token_signed_response_alg: 'EdDSA',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    jwks: { keys: [{ ...publicJwk, alg: 'EdDSA' }] },
  }],
  jwks: { keys: [{ ...issuerKey, kid: 'bench-issuer', alg: 'EdDSA', use: 'sig' }] },
  enabledJWA: {
    clientAuthSigningAlgValues: ['EdDSA', 'Ed25519'],
    idTokenSigningAlgValues: ['EdDSA'],
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'github:repo.read',
        accessTokenTTL: 900,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'EdDSA' } },
      }),
    },
  },
  scopes: ['github:repo.read'],
});
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`Listening on http://127.0.0.1:${port}`);
});

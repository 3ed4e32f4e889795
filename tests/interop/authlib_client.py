"""Interop: obtain a Mandate token with Authlib (private_key_jwt, client_credentials) and
verify it through the JWKS with PyJWT, two libraries that know nothing about Mandate.

Usage: authlib_client.py ISSUER CLIENT_ID PRIVATE_JWK_FILE [SCOPE]
Prints one JSON object: the token response fields (token redacted) and the verified claims.
With CA_FILE set (an https ISSUER, `mandate serve --tls`), every request trusts exactly that
certificate file: requests' `verify=CA_FILE` and an SSL context for PyJWT's JWKS fetch.
"""
import json
import os
import ssl
import sys
import time

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import OKPKey


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's private_key_jwt with a 60 s assertion: its default lifetime is one hour, and
    Mandate refuses assertions that live over 5 minutes (SECURITY.md)."""

    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            expires_at=int(time.time()) + 60,
        )


def main() -> int:
    issuer, client_id, key_file = sys.argv[1:4]
    scope = sys.argv[4] if len(sys.argv) > 4 else None
    ca_file = os.environ.get("CA_FILE")
    verify = ca_file if ca_file else True
    meta = requests.get(
        f"{issuer}/.well-known/oauth-authorization-server", timeout=10, verify=verify
    ).json()
    token_endpoint = meta["token_endpoint"]
    with open(key_file) as f:
        jwk = json.load(f)
    # Authlib (through joserfc) signs with the fully-specified RFC 9864 name "Ed25519"; the
    # key file says "alg": "EdDSA", which joserfc would hold it to, so drop that hint. The
    # Node client signs with "EdDSA": both names are exercised.
    jwk.pop("alg", None)
    private_key = OKPKey.import_key(jwk)
    session = OAuth2Session(
        client_id,
        private_key,
        token_endpoint_auth_method=ShortLivedPrivateKeyJWT(token_endpoint, alg="Ed25519"),
        scope=scope,
    )
    session.verify = verify
    token = session.fetch_token(
        token_endpoint, grant_type="client_credentials", verify=verify
    )
    access_token = token["access_token"]
    header = jwt.get_unverified_header(access_token)
    ssl_context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    signing_key = jwt.PyJWKClient(
        meta["jwks_uri"], ssl_context=ssl_context
    ).get_signing_key_from_jwt(access_token)
    unverified = jwt.decode(access_token, options={"verify_signature": False})
    claims = jwt.decode(
        access_token,
        signing_key.key,
        algorithms=["EdDSA"],
        issuer=meta["issuer"],
        audience=unverified["aud"],
        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]},
    )
    print(json.dumps({
        "token_type": token["token_type"],
        "expires_in": token["expires_in"],
        "typ": header.get("typ"),
        "kid": header.get("kid"),
        "claims": claims,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Interop: obtain a Mandate token with Authlib's private_key_jwt exactly as Authlib ships it
(its PrivateKeyJWT with no options: one-hour assertions, each addressed to the URL it is sent
to), introspect it and optionally revoke it the same way, and verify the token through the
JWKS with PyJWT: two libraries that know nothing about Mandate.

Usage: authlib_client.py ISSUER CLIENT_ID PRIVATE_JWK_FILE [SCOPE]
Prints one JSON object: the token response fields (token redacted), the verified claims, the
introspection answer and, for each request Authlib sent, its assertion's `aud` and lifetime
(so the test sees the library's defaults were used). With REVOKE=1 it also revokes the token
(Authlib's revoke_token, same client authentication) and introspects it again.
With CA_FILE set (an https ISSUER, `mandate serve --tls`), every request trusts exactly that
certificate file: requests' `verify=CA_FILE` and an SSL context for PyJWT's JWKS fetch.
"""
import json
import os
import ssl
import sys
from urllib.parse import parse_qs

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import OKPKey


def main() -> int:
    issuer, client_id, key_file = sys.argv[1:4]
    scope = sys.argv[4] if len(sys.argv) > 4 else None
    ca_file = os.environ.get("CA_FILE")
    verify = ca_file if ca_file else True
    meta = requests.get(
        f"{issuer}/.well-known/oauth-authorization-server", timeout=10, verify=verify
    ).json()
    with open(key_file) as f:
        jwk = json.load(f)
    # Authlib (through joserfc) signs with the fully-specified RFC 9864 name "Ed25519"; the
    # key file says "alg": "EdDSA", which joserfc would hold it to, so drop that hint. The
    # Node client signs with its own default: both names are exercised.
    jwk.pop("alg", None)
    private_key = OKPKey.import_key(jwk)
    # Authlib's defaults: no token_endpoint (so `aud` is whichever endpoint is called) and its
    # default lifetime (3600 s). Only the algorithm must be named: Authlib's default is RS256.
    auth = PrivateKeyJWT(alg="Ed25519")
    session = OAuth2Session(
        client_id,
        private_key,
        token_endpoint_auth_method=auth,
        revocation_endpoint_auth_method=auth,
        scope=scope,
    )
    session.verify = verify
    sent = []

    def record(response, *args, **kwargs):
        body = parse_qs(response.request.body or "")
        for assertion in body.get("client_assertion", []):
            claims = jwt.decode(assertion, options={"verify_signature": False})
            sent.append({
                "url": response.request.url,
                "aud": claims.get("aud"),
                "lifetime": claims["exp"] - claims["iat"],
            })

    session.hooks["response"].append(record)
    token = session.fetch_token(
        meta["token_endpoint"], grant_type="client_credentials", verify=verify
    )
    access_token = token["access_token"]
    introspection = session.introspect_token(
        meta["introspection_endpoint"], token=access_token, verify=verify
    ).json()
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
    out = {
        "token_type": token["token_type"],
        "expires_in": token["expires_in"],
        "typ": header.get("typ"),
        "kid": header.get("kid"),
        "claims": claims,
        "introspection": introspection,
    }
    if os.environ.get("REVOKE") == "1":
        revoked = session.revoke_token(
            meta["revocation_endpoint"], token=access_token, verify=verify
        )
        out["revocation_status"] = revoked.status_code
        out["after_revocation"] = session.introspect_token(
            meta["introspection_endpoint"], token=access_token, verify=verify
        ).json()
    out["assertions"] = sent
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

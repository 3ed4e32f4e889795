"""Interop: OpenID CIBA poll mode driven as raw HTTP with `requests`, the client assertion
signed by PyJWT: nothing here knows Mandate beyond the spec and the metadata it publishes.

Usage:
  ciba_client.py start ISSUER CLIENT_ID PRIVATE_JWK_FILE SCOPE LOGIN_HINT [BINDING [EXPIRY]]
  ciba_client.py poll  ISSUER CLIENT_ID PRIVATE_JWK_FILE AUTH_REQ_ID
Each prints one JSON object: the HTTP status and the body, plus (start) the metadata's CIBA
fields, and (poll, on success) the token's claims verified through the JWKS with PyJWT.
"""
import json
import sys
import time
import uuid

import jwt
import requests
from jwt.algorithms import OKPAlgorithm


def assertion(client_id: str, key, aud: str) -> str:
    now = int(time.time())
    return jwt.encode(
        {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
         "jti": str(uuid.uuid4())},
        key, algorithm="EdDSA",
    )


def main() -> int:
    mode, issuer, client_id, key_file = sys.argv[1:5]
    with open(key_file) as f:
        key = OKPAlgorithm.from_jwk(f.read())
    meta = requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=10).json()
    auth = {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    out = {}
    if mode == "start":
        scope, hint = sys.argv[5:7]
        endpoint = meta["backchannel_authentication_endpoint"]
        form = {"scope": f"openid {scope}", "login_hint": hint, **auth,
                "client_assertion": assertion(client_id, key, endpoint)}
        if len(sys.argv) > 7:
            form["binding_message"] = sys.argv[7]
        if len(sys.argv) > 8:
            form["requested_expiry"] = sys.argv[8]
        r = requests.post(endpoint, data=form, timeout=10)
        out["metadata"] = {
            k: meta.get(k) for k in (
                "backchannel_authentication_endpoint",
                "backchannel_token_delivery_modes_supported",
                "grant_types_supported",
            )
        }
    else:
        endpoint = meta["token_endpoint"]
        form = {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": sys.argv[5],
                **auth, "client_assertion": assertion(client_id, key, endpoint)}
        r = requests.post(endpoint, data=form, timeout=10)
    out["status"] = r.status_code
    out["cache_control"] = r.headers.get("cache-control")
    body = r.json()
    if "access_token" in body:
        token = body.pop("access_token")
        jwks = jwt.PyJWKClient(meta["jwks_uri"])
        signing = jwks.get_signing_key_from_jwt(token)
        body["claims"] = jwt.decode(
            token, signing.key, algorithms=["EdDSA"], issuer=issuer,
            options={"verify_aud": False},
        )
    out["body"] = body
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

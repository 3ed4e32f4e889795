"""A remote agent's own OAuth client, written with stock libraries (requests, joserfc) and no
Mandate code: private_key_jwt client authentication (RFC 7523) with a DPoP-bound token
(RFC 9449), then a call through the team server's broker with that token and a fresh proof,
then the same token sent as a plain Bearer token (which a bound token must not pass as).

Usage: dpop_client.py ISSUER CLIENT_ID PRIVATE_JWK_FILE RESOURCE_URL   (CA_FILE: the team CA)
Prints one JSON object: token_type, the token's cnf.jkt and our key's thumbprint, the status
of the DPoP call and of the Bearer call.
"""
import base64
import hashlib
import json
import os
import sys
import time
import uuid

import requests
from joserfc import jwt
from joserfc.jwk import OKPKey

ALG = "Ed25519"


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main() -> int:
    issuer, client_id, key_file, resource = sys.argv[1:5]
    ca = os.environ["CA_FILE"]
    meta = requests.get(f"{issuer}/.well-known/oauth-authorization-server", verify=ca, timeout=10).json()
    assert meta["issuer"] == issuer, meta
    token_endpoint = meta["token_endpoint"]
    with open(key_file) as f:
        jwk = json.load(f)
    jwk.pop("alg", None)
    key = OKPKey.import_key(jwk)
    dpop_key = OKPKey.generate_key("Ed25519")
    public = dpop_key.as_dict(private=False)

    def proof(method: str, url: str, ath: str | None = None) -> str:
        claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())}
        if ath:
            claims["ath"] = ath
        return jwt.encode({"typ": "dpop+jwt", "alg": ALG, "jwk": public}, claims, dpop_key, algorithms=[ALG])

    now = int(time.time())
    assertion = jwt.encode(
        {"alg": ALG, "kid": key.thumbprint()},
        {"iss": client_id, "sub": client_id, "aud": token_endpoint, "iat": now, "exp": now + 300,
         "jti": str(uuid.uuid4())},
        key,
        algorithms=[ALG],
    )
    r = requests.post(
        token_endpoint,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        headers={"DPoP": proof("POST", token_endpoint)},
        verify=ca,
        timeout=10,
    )
    r.raise_for_status()
    tok = r.json()
    at = tok["access_token"]
    claims = json.loads(base64.urlsafe_b64decode(at.split(".")[1] + "=="))
    ath = b64url(hashlib.sha256(at.encode()).digest())
    bound = requests.get(
        resource,
        headers={"Authorization": f"DPoP {at}", "DPoP": proof("GET", resource, ath)},
        verify=ca,
        timeout=10,
    )
    bearer = requests.get(resource, headers={"Authorization": f"Bearer {at}"}, verify=ca, timeout=10)
    print(json.dumps({
        "token_type": tok["token_type"],
        "cnf_jkt": claims.get("cnf", {}).get("jkt"),
        "our_jkt": dpop_key.thumbprint(),
        "dpop_status": bound.status_code,
        "bearer_status": bearer.status_code,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A small MCP-style resource server that accepts Mandate tokens with a stock JWT library.

It does what the MCP authorization spec asks of an MCP server acting as an OAuth resource
server, with Mandate as its authorization server:
  * publishes OAuth Protected Resource Metadata (RFC 9728) at
    /.well-known/oauth-protected-resource, naming Mandate as its authorization server;
  * answers 401 with `WWW-Authenticate: Bearer resource_metadata="..."` when a request has no
    valid token (RFC 9728 §5.1);
  * verifies the token offline through Mandate's JWKS (PyJWT): signature (EdDSA), `typ`
    `at+jwt` (RFC 9068), issuer, expiry, and the audience is this server (RFC 8707);
  * checks the scope the tool needs and answers 403 `insufficient_scope` otherwise.

Offline verification means a token stays usable here until its `exp` even after it is revoked
in Mandate: keep lifetimes short, or set MANDATE_INTROSPECT=1 to also ask Mandate's
introspection endpoint (it then needs an agent identity of its own; see docs/ARCHITECTURE.md).

Usage: MANDATE_ISSUER=http://127.0.0.1:6263 RESOURCE=http://127.0.0.1:8808 \
       REQUIRED_SCOPE=notes:read python server.py
Needs: pyjwt[crypto] (tests/interop/requirements.txt).
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse
from urllib.request import urlopen

import jwt

ISSUER = os.environ["MANDATE_ISSUER"].rstrip("/")
RESOURCE = os.environ["RESOURCE"].rstrip("/")
REQUIRED_SCOPE = os.environ.get("REQUIRED_SCOPE", "notes:read")
METADATA_PATH = "/.well-known/oauth-protected-resource"

with urlopen(f"{ISSUER}/.well-known/oauth-authorization-server", timeout=10) as r:
    AS_META = json.load(r)
JWKS = jwt.PyJWKClient(AS_META["jwks_uri"], cache_keys=True)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet; never log tokens
        pass

    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def challenge(self, status, error=None, description=None):
        parts = [f'resource_metadata="{RESOURCE}{METADATA_PATH}"']
        if error:
            parts.append(f'error="{error}"')
        if description:
            parts.append(f'error_description="{description}"')
        if status == 403:
            parts.append(f'scope="{REQUIRED_SCOPE}"')
        body = {"error": error or "unauthorized"}
        self.send_json(status, body, {"WWW-Authenticate": "Bearer " + ", ".join(parts)})

    def do_GET(self):
        path = urlparse(self.path).path
        if path == METADATA_PATH:
            return self.send_json(200, {
                "resource": RESOURCE,
                "authorization_servers": [ISSUER],
                "scopes_supported": [REQUIRED_SCOPE],
                "bearer_methods_supported": ["header"],
                "resource_signing_alg_values_supported": ["EdDSA"],
            })
        if path != "/notes":
            return self.send_json(404, {"error": "not_found"})
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self.challenge(401)
        token = auth[len("Bearer "):].strip()
        try:
            if jwt.get_unverified_header(token).get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
                raise jwt.InvalidTokenError("not an access token")
            key = JWKS.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token, key, algorithms=["EdDSA"], issuer=ISSUER, audience=RESOURCE,
                options={"require": ["exp", "iss", "aud", "sub", "scope"]},
            )
        except jwt.InvalidAudienceError:
            return self.challenge(401, "invalid_token", "the token is for another audience")
        except jwt.PyJWTError:
            return self.challenge(401, "invalid_token", "the token is invalid or expired")
        if REQUIRED_SCOPE not in claims.get("scope", "").split():
            return self.challenge(403, "insufficient_scope", f"this needs {REQUIRED_SCOPE}")
        return self.send_json(200, {
            "notes": ["quarterly numbers are in"],
            "caller": claims["sub"],
            "acting_agent": claims.get("act", {}).get("sub", claims.get("client_id")),
        })


def main():
    port = urlparse(RESOURCE).port or 8808
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"resource server on {RESOURCE}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

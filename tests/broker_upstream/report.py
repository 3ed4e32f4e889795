#!/usr/bin/env python3
"""The issue's example agent: a billing report that reads GitHub issues through Mandate.

It knows nothing about the real GitHub key: it reads the proxy URL from MANDATE_GITHUB_URL and
the current Mandate token from the file named by MANDATE_TOKEN_FILE, as `mandate exec` sets
them. Writes what it got, and its whole environment, as JSON to the file given as argument.
"""

import json
import os
import sys
import urllib.request

url = os.environ["MANDATE_GITHUB_URL"] + "/repos/acme/billing/issues"
with open(os.environ["MANDATE_TOKEN_FILE"]) as f:
    token = f.read().strip()
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
with urllib.request.urlopen(req) as r:
    issues = json.load(r)
with open(sys.argv[1], "w") as f:
    json.dump({"issues": issues, "env": dict(os.environ), "argv": sys.argv}, f)
print(f"{len(issues)} open billing issues")

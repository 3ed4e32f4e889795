"""Sign a Mandate review attestation with an independent in-toto / DSSE implementation.

    sign_review.py keygen KEY_DIR
        Make an Ed25519 key pair: KEY_DIR/private.pem and KEY_DIR/public.pem (SPKI).
    sign_review.py sign KEY_DIR SUBJECT_JSON RESULT EXPIRES [POINTS]
        SUBJECT_JSON is what `mandate attest subject AGENT --json` prints. Builds the in-toto
        Statement v1 with in-toto-attestation, wraps it in a DSSE envelope signed by
        securesystemslib's CryptoSigner, and prints the envelope (JSON).

Nothing here shares code with Mandate: if this envelope verifies there, the format
interoperates.
"""

import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import json_format
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner


def keygen(key_dir: Path) -> None:
    key_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    (key_dir / "private.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (key_dir / "public.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def sign(key_dir: Path, subject_json: str, result: str, expires: str, points=None) -> None:
    info = json.loads(subject_json)
    subjects = []
    for s in info["subject"]:
        rd = ResourceDescriptor(name=s["name"], digest=s["digest"])
        subjects.append(rd.pb)
    predicate = {"result": result, "scope_reviewed": info.get("scopes", []), "expires": expires}
    if points is not None:
        predicate["points"] = int(points)
    st = Statement(subjects, info["predicateType"], predicate)
    st.validate()
    payload = json_format.MessageToJson(st.pb).encode()
    key = serialization.load_pem_private_key((key_dir / "private.pem").read_bytes(), None)
    signer = CryptoSigner(key)
    env = Envelope(payload=payload, payload_type="application/vnd.in-toto+json", signatures={})
    env.sign(signer)
    print(json.dumps(env.to_dict()))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "keygen":
        keygen(Path(sys.argv[2]))
    elif cmd == "sign":
        sign(Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], *sys.argv[6:7])
    else:
        sys.exit(f"unknown command {cmd}")

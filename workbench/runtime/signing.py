"""Ed25519 signatures of provenance manifests, by this home's own key.

The key lives at ``WORKBENCH_HOME/keys/provenance-ed25519.pem`` (folder 0700, file 0600),
made on first use. ``verify`` trusts exactly one key: this home's. A signature proves that
the manifest was written by a run that could use that key and has not changed since.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .publish import PROVENANCE, SIGNATURE

KEY_FILE = "provenance-ed25519.pem"


def key_path(home: Path) -> Path:
    return home / "keys" / KEY_FILE


def ensure_key(home: Path) -> Path:
    """The local Ed25519 signing key, created on first use (dir 0700, file 0600)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = key_path(home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    if path.exists():
        return path
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    try:
        os.link(tmp, path)  # atomic: a concurrent first use keeps the key that won
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path


def _private_key(home: Path) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(key_path(home).read_bytes(), password=None)


def _raw_public(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    raw: bytes = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw


def fingerprint(public: bytes) -> str:
    """``SHA256:`` and the unpadded base64 of the sha256 of a raw 32-byte Ed25519 public key
    (the form ``ssh-keygen -l`` prints, over the raw key rather than ssh's key blob)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(public).digest()).decode().rstrip("=")


def load_signing_key(home: Path) -> Any:
    """This home's Ed25519 private key (created on first use)."""
    return _private_key(ensure_key(home).parent.parent)


def trusted_fingerprint(home: Path) -> str | None:
    """The fingerprint of the one key ``verify`` trusts: this home's own key (None when it has none).

    A signature proves that the manifest was written by a run that could use this home's
    private key (a run launched from it, by its owner) and has not changed since. It is not
    a proof against code the owner ran: a notebook runs as the owner and could read the key.
    """
    if not key_path(home).exists():
        return None
    return fingerprint(_raw_public(_private_key(home).public_key()))


def sign_manifest(run_dir: Path, home: Path, *, key: Any = None) -> None:
    """Write ``provenance.sig.json``: an Ed25519 signature of ``provenance.json`` as it is,
    with ``key`` (a private key loaded earlier), else with this home's key."""
    if key is None:
        key = load_signing_key(home)
    signature = key.sign((run_dir / PROVENANCE).read_bytes())
    public = _raw_public(key.public_key())
    record = {
        "algorithm": "ed25519",
        "key": fingerprint(public),
        "public_key": public.hex(),
        "signature": base64.b64encode(signature).decode(),
    }
    (run_dir / SIGNATURE).write_text(json.dumps(record, indent=2) + "\n")


def check_signature(manifest: bytes, record_text: bytes, home: Path) -> str | None:
    """None when ``manifest`` (the bytes of ``provenance.json``) carries a valid signature by
    this home's key in ``record_text`` (the bytes of ``provenance.sig.json``), else the problem.

    Only this home's own public key is trusted: the key named in the record is compared with
    it, never used on its own (anyone can sign with a key of their own and name it there).
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        record = json.loads(record_text)
        if not isinstance(record, dict):
            raise TypeError("not a JSON object")
        if record.get("algorithm") != "ed25519":
            raise ValueError(f"algorithm {record.get('algorithm')!r}, not 'ed25519'")
        signature = base64.b64decode(record["signature"], validate=True)
        public = bytes.fromhex(record["public_key"])
        if len(public) != 32 or len(signature) != 64:
            raise ValueError("not an Ed25519 key and signature")
    except (ValueError, KeyError, TypeError) as exc:
        return f"{SIGNATURE}: unreadable ({exc})"
    trusted = trusted_fingerprint(home)
    if trusted is None:
        return (
            f"{SIGNATURE}: this home has no signing key ({key_path(home)}), so no signature is "
            "trusted here; verify on the machine and WORKBENCH_HOME that signed the run"
        )
    if fingerprint(public) != trusted:
        return f"{SIGNATURE}: signed by another key ({fingerprint(public)}), not this home's key ({trusted})"
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, manifest)
    except InvalidSignature:
        return f"{SIGNATURE}: the signature does not match {PROVENANCE} (it was changed after signing)"
    return None


def public_fingerprint(key: Any) -> str:
    """The fingerprint of a loaded private key's public half."""
    return fingerprint(_raw_public(key.public_key()))

"""``--get`` results, sealed so that only the run's own runner can produce them.

A launch that asks for results gets a fresh random key (made by the service, kept in the
store, never written to the run directory or a log). The workload receives it in the
environment variable :data:`KEY_ENV` (on Kubernetes by reference to a per-launch Secret); the
runner takes it out of the environment before the user's code starts, so neither that code
nor anything it starts sees it. The runner seals the pickled values with an HMAC-SHA256 of
that key; the kernel checks the HMAC before it unpickles anything. A line printed by the
code, a ``results.pkl`` left in the run directory, or the log of another container cannot
carry a valid seal, so they are never loaded.

Only the standard library: this runs inside workloads and in the supervisor's neighbours.
"""

from __future__ import annotations

import base64
import binascii
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The environment variable that hands the key to the runner (removed before the code runs).
KEY_ENV = "WORKBENCH_RESULTS_KEY"
#: Starts the line that carries ``--get`` results in a pod's log (never shown to users).
MARKER = "\x1eworkbench-results:"
#: The sealed results file of a local run.
FILE = "results.sealed"
_CONTEXT = b"workbench-results-v1\0"
_MAC_SIZE = 32


class Unsealed(ValueError):
    """Sealed results that do not verify (tampered, forged, or from another launch)."""


def new_key() -> str:
    """A fresh key for one launch, as hex."""
    import secrets

    return secrets.token_hex(32)


def take_key() -> bytes | None:
    """The key handed to this process, removed from the environment (None when none was)."""
    value = os.environ.pop(KEY_ENV, None)
    if not value:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def _mac(key: bytes, blob: bytes) -> bytes:
    # imported here: the supervisor needs only KEY_ENV, and OpenSSL costs it ~4 MB of RSS
    import hashlib
    import hmac

    return hmac.new(key, _CONTEXT + blob, hashlib.sha256).digest()


def seal(blob: bytes, key: bytes) -> bytes:
    """``blob`` with its HMAC in front (the local results file)."""
    return _mac(key, blob) + blob


def unseal(sealed: bytes, key: bytes) -> bytes:
    """The blob inside ``sealed``.

    Raises:
        Unsealed: the seal does not match the key.
    """
    import hmac

    mac, blob = sealed[:_MAC_SIZE], sealed[_MAC_SIZE:]
    if len(mac) != _MAC_SIZE or not hmac.compare_digest(mac, _mac(key, blob)):
        raise Unsealed("the results' seal does not match this launch's key")
    return blob


def seal_line(blob: bytes, key: bytes) -> str:
    """The log line that carries sealed results (a pod's disk goes away with it)."""
    return MARKER + base64.b64encode(seal(blob, key)).decode() + "\n"


def find_in_log(log: str, key: bytes) -> bytes | None:
    """The blob of the last marked line in ``log`` whose seal matches ``key``, else None.

    Marked lines that do not verify (printed by the code, or by anything else that shares
    the log) are passed over, never loaded.
    """
    start = len(log)
    while start > 0:
        start = log.rfind(MARKER, 0, start)
        if start < 0:
            return None
        end = log.find("\n", start)
        text = log[start + len(MARKER) : end if end >= 0 else None]
        try:
            return unseal(base64.b64decode(text, validate=True), key)
        except (Unsealed, binascii.Error, ValueError):
            continue
    return None


def _unpickle(verified: bytes) -> dict[str, Any]:
    # the one place results are unpickled: only blobs whose seal verified reach it, and what was
    # sealed with this launch's key (only the launching store holds it) is the user's own --get
    import pickle

    data: dict[str, Any] = pickle.loads(verified)  # noqa: S301
    return data


def load(sealed: bytes, key: bytes) -> dict[str, Any]:
    """The ``--get`` values in ``sealed`` (as :func:`seal` wrote them), once the seal verified.

    Raises:
        Unsealed: the seal does not match ``key``; nothing was unpickled.
    """
    return _unpickle(unseal(sealed, key))


def load_run(workload_id: str, status: str, run_dir: str, key: bytes) -> dict[str, Any]:
    """The ``--get`` values of a local run (its :data:`FILE`); empty unless it succeeded.

    Raises:
        PermissionDenied: the file's seal does not match ``key``; nothing was unpickled.
    """
    from pathlib import Path

    from ..errors import PermissionDenied

    path = Path(run_dir) / FILE
    if status != "succeeded" or not path.exists():
        return {}
    try:
        return load(path.read_bytes(), key)
    except Unsealed:
        raise PermissionDenied(
            f"the --get results of {workload_id} were not written by its runner "
            "(their seal does not match the launch's key); they were not loaded",
            value=str(path),
            hint="rerun the workload; nothing else should write results.sealed",
        ) from None


def load_from_log(log: str, key: bytes) -> dict[str, Any] | None:
    """The ``--get`` values of the last marked line in ``log`` sealed with ``key``, else None."""
    blob = find_in_log(log, key)
    return None if blob is None else _unpickle(blob)

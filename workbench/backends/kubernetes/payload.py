"""The payload ConfigMap: a workload's code, its ``meta.json`` and its ``--send`` inputs.

Immutable, text in ``data`` and anything else in ``binaryData``; too large for a ConfigMap is
a clear error naming the limit. Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from ...errors import SpecError
from ...spec import CodeSpec
from ...units import format_bytes
from .settings import KubeSettings, object_name

META_KEY = "meta.json"
INPUTS_KEY = "inputs.pkl"
_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def _utf8(data: str | bytes) -> str | None:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def payload_configmap(
    name: str,
    labels: Mapping[str, str],
    *,
    files: Mapping[str, str | bytes],
    settings: KubeSettings,
) -> dict[str, Any]:
    """An immutable ConfigMap of ``files``: UTF-8 text in ``data``, other bytes in ``binaryData``.

    Raises:
        SpecError: a bad file name, or the files are larger than ``max_configmap_bytes``.
    """
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    size = 0
    for key, content in files.items():
        if len(key) > 253 or not _CONFIGMAP_KEY.match(key) or key in (".", ".."):
            raise SpecError(
                f"file name {key!r} cannot be a ConfigMap key (letters, digits, '-', '_', '.'; at most 253)",
                value=key,
                hint="rename the script, e.g. train.py",
            )
        text = _utf8(content)
        if text is not None:
            data[key] = text
            size += len(text.encode("utf-8"))
        else:
            raw = content if isinstance(content, bytes) else b""
            binary[key] = base64.b64encode(raw).decode("ascii")
            size += len(raw)
    limit = settings.max_configmap_bytes
    if size > limit:
        raise SpecError(
            f"the payload of {name} (code, meta.json and --send inputs) is {size} bytes "
            f"({format_bytes(size)}); a ConfigMap holds at most {limit} bytes",
            value=size,
            hint="send less with --send, or put large data on a volume (--volume pvc/NAME:/data) "
            "and load it in the code",
        )
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": dict(labels)},
        "immutable": True,
        "data": data,
    }
    if binary:
        doc["binaryData"] = binary
    return doc


def code_payload(
    workload_id: str,
    spec: CodeSpec,
    *,
    code: str | bytes,
    entry_name: str,
    inputs: bytes | None,
    labels: Mapping[str, str],
    settings: KubeSettings,
) -> dict[str, Any]:
    """The immutable ConfigMap ``<id>-payload`` with the code, ``meta.json`` and the inputs.

    Raises:
        SpecError: a name Kubernetes would refuse, a file name taken by the payload, or a
            payload too large for a ConfigMap.
    """
    name = object_name(f"{workload_id}-payload", what="payload ConfigMap name", limit=253)
    if entry_name in (META_KEY, INPUTS_KEY):
        raise SpecError(
            f"the code cannot be called {entry_name!r}; that name is taken in the payload",
            value=entry_name,
            hint="rename the script",
        )
    meta = {
        "entry": entry_name,
        "argv0": spec.script or "cell",
        "args": list(spec.args),
        "get": list(spec.get),
    }
    files: dict[str, str | bytes] = {entry_name: code, META_KEY: json.dumps(meta)}
    if inputs is not None:
        files[INPUTS_KEY] = inputs
    return payload_configmap(name, labels, files=files, settings=settings)

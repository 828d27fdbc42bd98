"""Just enough protobuf to read the SelfSubjectAccessReview that ``kubectl auth can-i`` sends."""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
_ATTRIBUTES = ("namespace", "verb", "group", "version", "resource", "subresource", "name")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> dict[int, list[Any]]:
    """Field number → values (ints for varints, bytes for length-delimited)."""
    out: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _first(found: dict[int, list[Any]], number: int) -> bytes:
    values = found.get(number) or [b""]
    return values[0] if isinstance(values[0], bytes) else b""


def access_review(body: bytes) -> dict[str, Any]:
    """A protobuf SelfSubjectAccessReview (runtime.Unknown envelope) as its JSON form."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf message")
    review = fields(_first(fields(body[len(MAGIC) :]), 2))
    spec = fields(_first(review, 2))
    spec_json: dict[str, Any] = {}
    if 1 in spec:
        attrs = fields(_first(spec, 1))
        spec_json["resourceAttributes"] = {
            name: _first(attrs, number).decode()
            for number, name in enumerate(_ATTRIBUTES, 1)
            if number in attrs
        }
    if 2 in spec:
        attrs = fields(_first(spec, 2))
        spec_json["nonResourceAttributes"] = {
            "path": _first(attrs, 1).decode(),
            "verb": _first(attrs, 2).decode(),
        }
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": spec_json}

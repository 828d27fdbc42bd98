"""Which optional APIs the cluster serves, from API discovery (no RBAC rule needed for it).

``GET /apis/<group>/<version>`` lists the resources of a group version; every authenticated
user may ask (the ``system:discovery`` role). A CRD that is installed is served there, so this
answers "is the operator installed?" without the cluster-wide right to read CRDs.
"""

from __future__ import annotations

from typing import Any

from ...errors import NotFound


def serves(client: Any, group: str, version: str, plural: str) -> bool:
    """Whether the API server serves ``plural`` in ``group/version``.

    Raises:
        BackendUnavailable: the API server did not answer.
    """
    try:
        found = client.request("GET", f"/apis/{group}/{version}", verb="get", resource=f"{group}/{version}")
    except NotFound:
        return False
    return any(entry.get("name") == plural for entry in found.get("resources") or [])

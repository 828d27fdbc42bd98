"""Widget or text: whether launches from this process show widgets (see :mod:`workbench.widgets`).

Apart from the widgets, so that a kernel in text mode decides without loading them (or the
store, or pydantic).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any

ENV = "WORKBENCH_WIDGETS"
ON, OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def wanted() -> bool:
    """Whether launches from this process show widgets (see :mod:`workbench.widgets`)."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced in ON:
        return True
    if forced in OFF:
        return False
    return widget_front_end()


def widget_front_end() -> bool:
    """An IPython kernel with a comm manager whose front end is known to render widgets."""
    from IPython.core.getipython import get_ipython

    kernel = getattr(get_ipython(), "kernel", None)  # type: ignore[no-untyped-call]
    if kernel is None or getattr(kernel, "comm_manager", None) is None:
        return False
    return "google.colab" in sys.modules or bool(_connection_info().get("jupyter_session"))


@functools.lru_cache(maxsize=1)
def _connection_info() -> dict[str, Any]:
    """This kernel's connection file (written once, by whatever started the kernel)."""
    try:
        from ipykernel.connect import get_connection_file

        with open(get_connection_file()) as fh:
            info = json.load(fh)
    except Exception:
        return {}
    return info if isinstance(info, dict) else {}

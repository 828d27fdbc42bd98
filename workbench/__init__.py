"""jupyter-ml-workbench: launch compute from notebook cells, the CLI or the JupyterLab sidebar.

``%load_ext workbench`` registers the magics. The Python API (``workbench.Service`` and the
errors) is imported on first use, so importing this package costs almost nothing.
"""

from __future__ import annotations

from ._version import __version__

# not ``from typing import TYPE_CHECKING``: every workload's runner imports this package, and
# ``typing`` alone costs it ~7 ms of start-up (type checkers read the name the same way)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .errors import WorkbenchError
    from .metrics import log_metric
    from .service import Service

__all__ = ["Service", "WorkbenchError", "__version__", "load_ipython_extension", "log_metric"]


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext workbench``."""
    from .magics import load_ipython_extension as load

    load(ipython)


def __getattr__(name: str) -> Any:
    if name == "Service":
        from .service import Service

        return Service
    if name == "WorkbenchError":
        from .errors import WorkbenchError

        return WorkbenchError
    if name == "log_metric":
        from .metrics import log_metric

        return log_metric
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")

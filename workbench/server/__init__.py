"""The Jupyter Server extension: the REST API and the live workload events behind the sidebar.

Enable it with ``jupyter server extension enable workbench.server`` (the wheel ships a
``jupyter_server_config.d`` file that does this). Importing this package costs nothing: the
application class is imported only when Jupyter Server asks for the extension points.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import WorkbenchApp

    return [{"module": "workbench.server", "app": WorkbenchApp}]

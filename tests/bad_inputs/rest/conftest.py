"""A real Jupyter server with the workbench extension (the fixtures of tests/server)."""

from tests.server.conftest import *  # noqa: F403

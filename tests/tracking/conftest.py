"""A real tracking server for the MLflow tests: ``mlflow server`` on a SQLite store on loopback,
started once for the directory; it boots (~10 s) while the tests that need no server run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.config import load_settings
from workbench.service import Service
from workbench.store import ACTIVE

from ..backends.kubernetes.conftest import kube_env  # noqa: F401 - the emulator, for the kubernetes test
from ..conftest import BIN
from ..k8s.fixtures import k8s, k8s_client, kubeconfig  # noqa: F401


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session", autouse=True)
def booting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    argv = [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    argv += ["--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", "1"]
    with (folder / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True
        )
    yield proc, f"http://127.0.0.1:{port}", folder / "server.log"
    os.killpg(proc.pid, signal.SIGKILL)  # nothing of it is kept
    proc.wait(timeout=20)


@pytest.fixture(scope="session")
def server(booting: tuple[subprocess.Popen[bytes], str, Path]) -> str:
    """The tracking server's URL, once it answers /health."""
    proc, url, log = booting
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                if answer.status == 200:
                    return url
        except OSError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "mlflow server did not answer /health in 60 s"
        time.sleep(0.2)


@pytest.fixture
def tracked(server: str, wb_home: Path) -> Iterator[Service]:
    """A service whose config tracks in the test server (experiment ``tests``)."""
    svc = Service(load_settings(mlflow={"tracking_uri": server, "experiment": "tests"}))
    yield svc
    for workload in svc.store.list(status=ACTIVE):
        svc.cancel(workload.id)
    svc.close()

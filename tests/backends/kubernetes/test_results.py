"""``--get`` results of pods on the cluster are sealed: a printed marker line is never unpickled."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path

import pytest

from tests.k8s.emulator import Emulator
from workbench.runtime.results import KEY_ENV, MARKER
from workbench.service import Service


class Boom:
    """Unpickling it creates the file it names: proof that code ran in the kernel."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


@pytest.fixture
def forged(tmp_path: Path) -> tuple[Path, str]:
    target = tmp_path / "pwned"
    line = MARKER + base64.b64encode(pickle.dumps({"y": Boom(str(target))})).decode()
    return target, line


def test_a_marker_line_printed_without_get_is_shown_and_never_loaded(
    kube: Service, forged: tuple[Path, str]
) -> None:
    target, line = forged
    workload = kube.launch({"kind": "pod", "code": f"print({line!r})\nprint('after')"})
    final = kube.wait(workload.id, timeout=60)
    assert final.status == "succeeded"
    assert kube.results(workload.id) == {}
    assert not target.exists()
    assert "".join(kube.logs(workload.id)) == line + "\nafter\n"  # not hidden: it is the code's output


def test_a_forged_line_after_the_runners_is_passed_over(
    kube: Service, k8s: Emulator, forged: tuple[Path, str]
) -> None:
    target, line = forged
    code = f"import atexit\natexit.register(print, {line!r})\ny = 42\n"  # printed after the runner's line
    workload = kube.launch({"kind": "pod", "code": code, "get": "y"})
    final = kube.wait(workload.id, timeout=60)
    assert final.status == "succeeded"
    assert kube.results(workload.id) == {"y": 42}
    assert not target.exists()
    # the key reaches the pod by reference to a per-launch Secret, owned by the Job
    secret = k8s.get("secrets", f"{workload.id}-results")
    assert secret is not None
    assert [o["kind"] for o in secret["metadata"]["ownerReferences"]] == ["Job"]  # type: ignore[index]
    job = k8s.get("jobs", workload.id, group="batch")
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
    entry = next(e for e in env if e["name"] == KEY_ENV)
    assert entry["valueFrom"]["secretKeyRef"]["name"] == f"{workload.id}-results"
    kube.delete(workload.id)
    assert k8s.get("secrets", f"{workload.id}-results") is None


def test_dry_run_carries_no_key(kube: Service) -> None:
    docs = kube.dry_run({"kind": "pod", "code": "y = 1", "get": "y"})
    assert [d["kind"] for d in docs if d["kind"] == "Secret"] == []
    assert KEY_ENV not in str(docs)

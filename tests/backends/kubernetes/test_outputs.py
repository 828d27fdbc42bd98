"""What a `pod` workload writes outlives its pod on Kubernetes (``--output``), and a failure the
runner knows the reason of reaches the status through the termination message (emulator).

The emulator's PersistentVolumeClaims are folders shared by every pod that mounts them, so a
file published to a PVC-backed ``--output`` is read back here from that folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.k8s.emulator import Emulator
from workbench.errors import SpecError
from workbench.service import Service

WRITES = """
import os
from pathlib import Path
out = Path(os.environ["WORKBENCH_OUTPUT_DIR"])
(out / "result.txt").write_text("42")
(out / "plots").mkdir()
(out / "plots" / "loss.csv").write_text("step,loss\\n1,0.5\\n")
"""


def _published(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()}


EXPECTED = {"result.txt": "42", "plots/loss.csv": "step,loss\n1,0.5\n"}


def test_a_pods_outputs_are_published_under_a_pvc_backed_output(kube: Service, k8s: Emulator) -> None:
    spec = {"kind": "pod", "code": WRITES, "volumes": ["pvc/results:/mnt/results"], "name": "keeps"}
    workload = kube.launch({**spec, "output": "/mnt/results/runs"})
    final = kube.wait(workload.id, timeout=60)
    assert final.status == "succeeded", final.message
    assert _published(k8s.pvc_dir("results") / "runs" / "keeps") == EXPECTED  # <output>/<workload id>


def test_a_pods_outputs_are_published_to_an_fsspec_url(kube: Service, tmp_path: Path) -> None:
    workload = kube.launch(
        {"kind": "pod", "code": WRITES, "output": f"file://{tmp_path}/store", "name": "url"}
    )
    final = kube.wait(workload.id, timeout=60)
    assert final.status == "succeeded", final.message
    assert _published(tmp_path / "store" / "url") == EXPECTED


def test_outputs_that_cannot_be_published_fail_the_pod_saying_why(
    kube: Service, k8s: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "blocked").write_text("a file where the folder should be")
    k8s.deny("get", "pods/log")  # the reason comes from the termination message, not the log
    workload = kube.launch(
        {"kind": "pod", "code": WRITES, "output": f"file://{tmp_path}/blocked", "name": "blocked"}
    )
    final = kube.wait(workload.id, timeout=60)
    assert final.status == "failed"
    assert final.message.startswith(
        f"exited with code 1: the outputs could not be published to file://{tmp_path}/blocked/blocked: "
    ), final.message


def test_a_missing_get_value_reaches_the_status_without_the_log(kube: Service, k8s: Emulator) -> None:
    k8s.deny("get", "pods/log")
    workload = kube.launch({"kind": "pod", "code": "x = 1", "get": "missing_name", "name": "noget"})
    final = kube.wait(workload.id, timeout=60)
    assert final.status == "failed"
    assert final.message == (
        "exited with code 3: --get missing_name: not defined when the code finished; "
        "assign it in the cell or drop it from --get"
    )
    pod = next(iter(k8s.call(lambda: k8s.store.list(("", "pods")))))
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["message"].startswith("--get missing_name: not defined")


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        (
            {"output": "results"},
            "--output 'results' is a relative path; in the pod it must be an absolute path",
        ),
        (
            {"output": "/data/out", "volumes": ["emptydir:/data"]},
            "--output '/data/out' is not on a --volume pvc mount (no --volume pvc is mounted)",
        ),
    ],
)
def test_an_output_the_pod_cannot_keep_is_refused_before_anything_exists(
    kube: Service, k8s: Emulator, fields: dict[str, object], says: str
) -> None:
    with pytest.raises(SpecError) as info:
        kube.launch({"kind": "pod", "code": "pass", "name": "refused", **fields})
    line = info.value.one_line()
    assert line.startswith(says) and "\n" not in line, line
    assert "--volume pvc/runs:/mnt/runs --output /mnt/runs" in line  # what to give instead
    assert k8s.count("POST") == 0 and kube.list() == []


def test_without_output_the_launch_says_once_that_outputs_are_not_kept(
    kube: Service, capfd: pytest.CaptureFixture[str]
) -> None:
    kube.launch({"kind": "pod", "code": "pass", "name": "first"})
    kube.launch({"kind": "pod", "code": "pass", "name": "second"})
    said = capfd.readouterr().err
    assert (
        said.count("workbench: warning: outputs are not kept: WORKBENCH_OUTPUT_DIR is the pod's own disk")
        == 1
    )
    assert "give --output" in said
    assert kube.wait("first", timeout=60).status == kube.wait("second", timeout=60).status == "succeeded"

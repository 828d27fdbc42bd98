"""An independent scanner over every kind's ``--dry-run`` output: checkov's Kubernetes checks.

The CLI prints each kind's manifests (``workbench ... --backend kubernetes --dry-run -o yaml``,
no cluster needed): a pod, a Dask cluster with an autoscaler, a training job as an Indexed
Job and as a Kubeflow Trainer TrainJob, a notebook run with ``--output`` on a ``--volume``, and a
scheduled notebook (a CronJob), an endpoint (Deployment, Service, HPA, PDB) and a KServe
InferenceService. checkov knows no custom resource, so the pods the Dask operator, the
Trainer and KServe will make from the DaskCluster's, the TrainJob's and the
InferenceService's templates are written out too (as Deployments and Jobs). One checkov run scans them all;
no check may fail except CKV_K8S_43 (an image pinned by tag rather than by digest: the
default image is published by version tag), which is reported once. The objects go to a
namespace of their own, as an admin configures it: in ``default`` checkov also reports
CKV_K8S_21 (CIS 5.7.4).

checkov lives in its own virtual environment (``make checkov`` makes ``.venv-checkov``; or
point ``WORKBENCH_CHECKOV`` at a checkov executable): it pins older versions of packages the
project's environment needs newer. It runs offline (``--skip-download``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.backends.local.test_notebook import write_notebook
from workbench.backends.kubernetes.trainjob_manifests import node_pod
from workbench.cli import main

ROOT = Path(__file__).resolve().parents[3]
CHECKOV = Path(os.environ.get("WORKBENCH_CHECKOV") or ROOT / ".venv-checkov" / "bin" / "checkov")
#: the one check allowed to fail: the images are published by version tag, not pinned by digest
IMAGE_BY_TAG = "CKV_K8S_43"
#: a namespace of its own, as an admin sets kubernetes.namespace (CIS 5.7.4: not "default")
NAMESPACE = "ml-team"
CUSTOM_KINDS = ("DaskCluster", "PyTorchJob", "TrainJob", "InferenceService")

# file name -> the CLI arguments that print it
DRY_RUNS: dict[str, list[str]] = {
    "pod": ["run", "train.py", "--name", "pod-1"],
    "dask": ["dask", "up", "--name", "dask-1", "--workers", "2", "--adapt", "1:4"],
    "train-job": ["train", "train.py", "--name", "train-1", "--nodes", "2"],
    "train-kubeflow": ["train", "train.py", "--name", "train-kf", "--nodes", "2", "--operator", "kubeflow"],
    "notebook": [
        "notebook", "run", "nb.ipynb", "--name", "nb-1", "-p", "alpha", "2",
        "--output", "/data/runs", "--volume", "pvc/data:/data",
    ],
    "schedule": [
        "notebook", "run", "nb.ipynb", "--name", "nb-nightly", "--schedule", "0 3 * * *",
        "--output", "s3://bucket/runs",
    ],
    "serve": ["serve", "model.py", "--name", "serve-1", "--autoscale", "2:4"],
    "serve-kserve": ["serve", "model.py", "--name", "serve-ks", "--operator", "kserve", "--replicas", "2"],
}  # fmt: skip


def _project(folder: Path) -> None:
    (folder / "train.py").write_text("print('training')\n")
    (folder / "model.py").write_text("def predict(inputs):\n    return inputs\n")
    write_notebook(folder / "nb.ipynb", "print(alpha)", parameters="alpha = 1")


#: InferenceService predictor fields that are KServe's, not the pod's
_PREDICTOR_ONLY = (
    "minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "labels", "annotations", "deploymentStrategy",
)  # fmt: skip


def _operator_objects(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """What an operator makes of a custom resource's pod templates, as checkov knows them: the
    Dask operator's scheduler and worker Deployments; the training operator's pods, which run
    to completion like a Job's (a Job here)."""
    meta, spec = doc["metadata"], doc["spec"]
    if doc["kind"] == "DaskCluster":
        parts = {"scheduler": spec["scheduler"], "worker": spec["worker"]}
        kind, api = "Deployment", "apps/v1"
    elif doc["kind"] == "TrainJob":  # Kubeflow Trainer's runtime runs the node pods in a Job
        parts, kind, api = {"node": node_pod(doc)}, "Job", "batch/v1"
    elif doc["kind"] == "InferenceService":  # KServe runs the predictor's pod spec in a Deployment
        pod = {k: v for k, v in spec["predictor"].items() if k not in _PREDICTOR_ONLY}
        parts = {"predictor": {"metadata": {"labels": spec["predictor"]["labels"]}, "spec": pod}}
        kind, api = "Deployment", "apps/v1"
    else:
        parts = {role.lower(): replica["template"] for role, replica in spec["pytorchReplicaSpecs"].items()}
        kind, api = "Job", "batch/v1"
    made = []
    for part, template in parts.items():
        labels = {**template["metadata"]["labels"], "part": part}
        body: dict[str, Any] = {"template": {"metadata": {"labels": labels}, "spec": template["spec"]}}
        if kind == "Deployment":
            body["selector"] = {"matchLabels": labels}
        name = f"{meta['name']}-{part}"
        made.append(
            {
                "apiVersion": api,
                "kind": kind,
                "metadata": {"name": name, "namespace": meta["namespace"]},
                "spec": body,
            }
        )
    return made


def _dry_runs(out: Path, capsys: pytest.CaptureFixture[str]) -> int:
    """Print every kind's manifests into ``out``; the number of objects written."""
    count = 0
    for name, args in DRY_RUNS.items():
        assert main([*args, "--backend", "kubernetes", "--dry-run", "-o", "yaml"]) == 0, name
        printed = capsys.readouterr().out
        docs = list(yaml.safe_load_all(printed))
        assert docs and docs[0]["kind"] == "NetworkPolicy", (name, [d["kind"] for d in docs])
        (out / f"{name}.yaml").write_text(printed)
        made = [obj for doc in docs if doc["kind"] in CUSTOM_KINDS for obj in _operator_objects(doc)]
        if made:
            (out / f"{name}-operator.yaml").write_text(yaml.safe_dump_all(made))
        count += len(docs) + len(made)
    return count


def test_checkov_finds_nothing_but_images_by_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make checkov`")
    project, out = tmp_path / "project", tmp_path / "manifests"
    project.mkdir()
    out.mkdir()
    _project(project)
    monkeypatch.chdir(project)
    monkeypatch.setenv("WORKBENCH_KUBERNETES__NAMESPACE", NAMESPACE)
    objects = _dry_runs(out, capsys)
    started = time.monotonic()
    done = subprocess.run(
        [str(CHECKOV), "-d", str(out), "--framework", "kubernetes", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    elapsed = time.monotonic() - started
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    summary = {key: sum(r["summary"][key] for r in reports) for key in ("passed", "failed", "parsing_errors")}
    failed = sorted(
        (check["check_id"], check["resource"], check["check_name"])
        for r in reports
        for check in r["results"]["failed_checks"]
    )
    assert summary["parsing_errors"] == 0, summary
    scanned = sum(r["summary"]["resource_count"] for r in reports)
    assert scanned >= objects - 2 * len(CUSTOM_KINDS), (scanned, objects)  # it knows no custom kind
    unexpected = [f for f in failed if f[0] != IMAGE_BY_TAG]
    assert unexpected == [], "\n".join(map(str, unexpected))
    by_tag = sorted({resource for check_id, resource, _ in failed if check_id == IMAGE_BY_TAG})
    print(
        f"\ncheckov ({elapsed:.1f}s, {scanned} resources, {summary['passed']} checks passed): "
        f"{IMAGE_BY_TAG} image pinned by tag instead of digest on {len(by_tag)} resources: "
        + ", ".join(by_tag)
    )

"""Beyond *restricted*: every workload's NetworkPolicy, and the policy checks that run on every
object before it is created and behind ``--dry-run`` (a setting can still make a bad pod)."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.backends.local.test_notebook import write_notebook
from tests.k8s.emulator import Emulator
from workbench.backends.kubernetes.build import refuse_unsafe
from workbench.backends.kubernetes.hardening import check_workload
from workbench.backends.kubernetes.policy import check_manifest
from workbench.config import load_settings
from workbench.errors import SpecError
from workbench.service import Service

ID = "workbench.jupyter.org/id"
CLIENT = {"workbench.jupyter.org/client": "true"}


def _notebook(folder: Path) -> str:
    return str(write_notebook(folder / "nb.ipynb", "print('ran', x)", parameters="x = 0"))


def kinds(folder: Path) -> dict[str, dict[str, Any]]:
    """A spec of every kind (and both train operators, and a schedule)."""
    notebook = {"kind": "notebook", "notebook": _notebook(folder), "output": "s3://bucket/runs"}
    return {
        "pod": {"kind": "pod", "code": "print(1)", "name": "pod-1"},
        "dask": {"kind": "dask", "name": "dask-1", "workers": 2, "adapt": "1:3"},
        "train": {"kind": "train", "code": "print(1)", "name": "train-1", "nodes": 2},
        "kubeflow": {
            "kind": "train",
            "code": "print(1)",
            "name": "train-2",
            "nodes": 2,
            "operator": "kubeflow",
        },
        "notebook": {**notebook, "name": "nb-1"},
        "schedule": {**notebook, "name": "nb-2", "schedule": "0 3 * * *"},
        "serve": {"kind": "serve", "code": "def predict(x):\n    return x\n", "name": "ep-1", "replicas": 2},
    }


# -- the NetworkPolicy of every kind -----------------------------------------------------------------------


@pytest.mark.parametrize("case", ["pod", "dask", "train", "kubeflow", "notebook", "schedule", "serve"])
def test_every_kind_has_a_network_policy_first_admitting_only_its_own_pods(
    service: Service, tmp_path: Path, case: str
) -> None:
    spec = kinds(tmp_path)[case]
    docs = service.dry_run(spec)
    policy = docs[0]
    assert policy["kind"] == "NetworkPolicy" and [d["kind"] for d in docs].count("NetworkPolicy") == 1
    for minor in range(25, 38):  # every version the builders target
        assert kubernetes_validate.validate(policy, f"1.{minor}.0", strict=True) == f"1.{minor}"
    name = spec["name"]
    assert policy["metadata"]["name"] == name and policy["metadata"]["labels"][ID] == name
    own = {"podSelector": {"matchLabels": {ID: name}}}
    assert policy["spec"]["podSelector"] == own["podSelector"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress stays open: data, registries
    ingress = policy["spec"]["ingress"]
    assert ingress[0] == {"from": [own]}
    if case == "dask":  # the clients (and the operator) reach the scheduler's ports only
        assert ingress[1] == {
            "from": [
                {"podSelector": {"matchLabels": CLIENT}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dask-operator"}}},
            ],
            "ports": [{"protocol": "TCP", "port": 8786}, {"protocol": "TCP", "port": 8787}],
        }
    elif case == "serve":  # the clients reach the model server's port only
        assert ingress[1] == {
            "from": [{"podSelector": {"matchLabels": CLIENT}}],
            "ports": [{"protocol": "TCP", "port": 8080}],
        }
    else:
        assert len(ingress) == 1
    assert check_workload(docs) == []
    for doc in docs:
        assert check_manifest(doc) == []


def test_the_client_selector_and_the_operator_namespace_are_settings(
    monkeypatch: pytest.MonkeyPatch, wb_home: Path
) -> None:
    monkeypatch.setenv(
        "WORKBENCH_KUBERNETES__CLIENT_LABELS", '{"hub.jupyter.org/network-access-dask": "true"}'
    )
    monkeypatch.setenv("WORKBENCH_KUBERNETES__DASK_OPERATOR_NAMESPACE", "dask-system")
    service = Service(load_settings())
    peers = service.dry_run({"kind": "dask", "name": "dask-1"})[0]["spec"]["ingress"][1]["from"]
    assert peers == [
        {"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-dask": "true"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dask-system"}}},
    ]
    service.close()


def test_check_workload_catches_a_pod_no_policy_selects(service: Service) -> None:
    docs = service.dry_run({"kind": "pod", "code": "1", "name": "pod-1"})
    assert check_workload(docs[1:]) == [
        "Job/pod-1: spec.template is selected by no NetworkPolicy of the workload"
    ]
    other = copy.deepcopy(docs)
    other[0]["spec"]["podSelector"]["matchLabels"][ID] = "someone-else"
    assert len(check_workload(other)) == 1
    with pytest.raises(SpecError, match="selected by no NetworkPolicy"):
        refuse_unsafe(docs[1:])
    refuse_unsafe(docs)


# -- a setting that yields a bad pod is refused: nothing created, nothing printed --------------------------


def test_a_setting_that_breaks_the_policy_is_refused_before_anything_is_created(
    kube_env: Path, k8s: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An admin keeps the uid of images built before 10001: every pod would run as 1000."""
    monkeypatch.setenv("WORKBENCH_KUBERNETES__RUN_AS_USER", "1000")
    service = Service(load_settings())
    try:
        for case, spec in kinds(tmp_path).items():
            for attempt in (service.launch, service.dry_run):
                with pytest.raises(SpecError) as info:
                    attempt(spec)
                text = info.value.one_line()
                assert "\n" not in text, case
                assert "breaks the cluster policy" in text and "runAsUser 1000 must be at least 10000" in text
                assert "set kubernetes.run_as_user to 10000 or more" in text, text
        assert k8s.count("POST") == 0  # not one object was created
        assert service.store.list() == []
    finally:
        service.close()
    (tmp_path / "x.py").write_text("print(1)\n")
    cli = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "run", "x.py", "--backend", "kubernetes", "--dry-run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert (cli.returncode, cli.stdout) == (2, "")  # nothing printed for kubectl to apply
    assert cli.stderr.count("\n") == 1 and "runAsUser 1000 must be at least 10000" in cli.stderr


# -- the NetworkPolicy's life on the cluster: created, owned, rolled back, deleted --------------------------


def _policy(k8s: Emulator, name: str) -> dict[str, Any] | None:
    return k8s.get("networkpolicies", name, group="networking.k8s.io")


def test_the_policy_is_owned_by_the_job_and_deleted_with_it(kube: Service, k8s: Emulator) -> None:
    done = kube.wait(kube.launch({"kind": "pod", "code": "print('hi')", "name": "guarded"}).id, timeout=60)
    assert done.status == "succeeded"
    policy = _policy(k8s, "guarded")
    job = k8s.get("jobs", "guarded", group="batch")
    assert policy is not None and job is not None
    owners = policy["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [("Job", "guarded", job["metadata"]["uid"])]
    pod = k8s.get("pods", kube.backend("kubernetes").pods("guarded")[0]["metadata"]["name"])  # type: ignore[attr-defined]
    assert pod is not None and pod["spec"]["automountServiceAccountToken"] is False
    kube.delete("guarded")
    assert _policy(k8s, "guarded") is None


def test_a_failed_launch_rolls_the_policy_back(kube: Service, k8s: Emulator) -> None:
    k8s.inject("POST", r"/jobs$", status=500, times=None)
    with pytest.raises(Exception, match="500"):
        kube.launch({"kind": "pod", "code": "1", "name": "rolled"})
    k8s.clear_faults()
    deadline = time.monotonic() + 10
    while _policy(k8s, "rolled") is not None or k8s.get("configmaps", "rolled-payload") is not None:
        assert time.monotonic() < deadline, "the NetworkPolicy or the ConfigMap outlived the failed launch"
        time.sleep(0.05)
    assert k8s.count("POST", r"/networkpolicies$") == 1  # it was created first, then removed


# -- --dry-run for every kind ---------------------------------------------------------------------------


def test_dask_up_and_notebook_run_print_their_manifests(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import yaml

    from workbench.cli import main

    monkeypatch.chdir(tmp_path)
    _notebook(tmp_path)
    assert main(["dask", "up", "--name", "dk", "--workers", "2", "--dry-run", "-o", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [d["kind"] for d in printed["items"]] == ["NetworkPolicy", "DaskCluster"]
    nightly = ["notebook", "run", "nb.ipynb", "--output", "s3://b/runs", "--schedule", "@daily"]
    assert main([*nightly, "--name", "nightly", "--dry-run", "-o", "yaml"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in docs] == ["NetworkPolicy", "ConfigMap", "CronJob"]
    assert docs[2]["spec"]["schedule"] == "@daily"
    sweep = ["notebook", "run", "nb.ipynb", "--output", "s3://b/runs", "--sweep", "x=1,2", "--dry-run"]
    assert main(sweep) == 0
    kinds_printed = [d["kind"] for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert kinds_printed == ["NetworkPolicy", "ConfigMap", "Job"] * 2  # one run per point
    assert service.store.list() == []  # a dry run launches nothing

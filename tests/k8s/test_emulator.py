"""The emulator's API, driven by the real ``kubernetes`` client and ``kubectl``."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from pathlib import Path

import kubernetes
import pytest
from kubernetes.client import ApiException

from tests.k8s import Emulator, run_kubectl
from tests.k8s.fixtures import KUBECTL
from tests.k8s.helpers import job, pod
from tests.k8s.helpers import status_body as body

# objects, selectors, errors ------------------------------------------------------------------


def test_create_get_list_with_selectors(k8s: Emulator, core: kubernetes.client.CoreV1Api) -> None:
    labels = {"a": {"tier": "web", "env": "prod"}, "b": {"tier": "db", "env": "prod"}, "c": {"tier": "web"}}
    created = [
        core.create_namespaced_config_map("default", {"metadata": {"name": n, "labels": v}})
        for n, v in labels.items()
    ]
    assert [int(c.metadata.resource_version) for c in created] == sorted(
        int(c.metadata.resource_version) for c in created
    )
    assert created[0].metadata.uid and created[0].metadata.namespace == "default"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
        (k8s.get("configmaps", "a") or {})["metadata"]["creationTimestamp"],
    )
    generated = core.create_namespaced_config_map("default", {"metadata": {"generateName": "gen-"}})
    assert re.fullmatch(r"gen-[a-z0-9]{5}", generated.metadata.name)
    got = core.read_namespaced_config_map("a", "default")
    assert got.metadata.labels == labels["a"]

    def names(**kw: str) -> list[str]:
        return [i.metadata.name for i in core.list_namespaced_config_map("default", **kw).items]

    assert names(label_selector="tier=web") == ["a", "c"]
    assert names(label_selector="tier==web,env=prod") == ["a"]
    assert names(label_selector="tier!=web") == [n for n in names() if n not in ("a", "c")]
    assert names(label_selector="tier in (db, web),env") == ["a", "b"]
    assert names(label_selector="tier notin (web),tier") == ["b"]
    assert names(label_selector="!env,tier") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b", label_selector="tier") == ["a", "c"]
    listing = core.list_namespaced_config_map("default")
    assert int(listing.metadata.resource_version) >= int(created[-1].metadata.resource_version)
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_pod("default", field_selector="spec.bogus=1")
    assert bad.value.status == 400


def test_error_statuses_are_real_kubernetes_statuses(
    core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "default")
    status = body(missing.value)
    assert missing.value.status == 404
    assert (status["kind"], status["status"], status["reason"]) == ("Status", "Failure", "NotFound")
    assert status["message"] == 'configmaps "nope" not found'
    assert status["details"] == {"name": "nope", "kind": "configmaps"}
    with pytest.raises(ApiException) as missing_job:
        batch.read_namespaced_job("nope", "default")
    assert body(missing_job.value)["message"] == 'jobs.batch "nope" not found'
    assert body(missing_job.value)["details"]["group"] == "batch"

    core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    assert exists.value.status == 409
    assert body(exists.value)["reason"] == "AlreadyExists"
    assert body(exists.value)["message"] == 'configmaps "x" already exists'

    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert invalid.value.status == 422
    assert body(invalid.value)["reason"] == "Invalid"
    assert body(invalid.value)["message"].startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
        "a lowercase RFC 1123 subdomain"
    )
    with pytest.raises(ApiException) as unnamed:
        core.create_namespaced_config_map("default", {"metadata": {}})
    assert "name or generateName is required" in body(unnamed.value)["message"]
    with pytest.raises(ApiException) as no_ns:
        core.create_namespaced_config_map("elsewhere", {"metadata": {"name": "x"}})
    assert body(no_ns.value)["message"] == 'namespaces "elsewhere" not found'


def test_replace_patch_and_conflicts(core: kubernetes.client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    stale = first.metadata.resource_version
    first.data = {"a": "2"}
    replaced = core.replace_namespaced_config_map("cfg", "default", first)
    assert replaced.data == {"a": "2"}
    assert int(replaced.metadata.resource_version) > int(stale)
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map(
            "cfg", "default", {"metadata": {"name": "cfg", "resourceVersion": stale}, "data": {"a": "3"}}
        )
    assert conflict.value.status == 409
    assert body(conflict.value)["reason"] == "Conflict"
    assert body(conflict.value)["message"] == (
        'Operation cannot be fulfilled on configmaps "cfg": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    patched = core.patch_namespaced_config_map(
        "cfg", "default", {"data": {"b": "x"}, "metadata": {"labels": {"l": "v"}}}
    )
    assert patched.data == {"a": "2", "b": "x"} and patched.metadata.labels == {"l": "v"}
    removed = core.patch_namespaced_config_map("cfg", "default", {"data": {"a": None}})
    assert removed.data == {"b": "x"}
    ops = [{"op": "add", "path": "/data/c", "value": "y"}, {"op": "remove", "path": "/data/b"}]
    core.api_client.set_default_header("Content-Type", "application/json-patch+json")
    json_patched = core.patch_namespaced_config_map(
        "cfg", "default", ops, _content_type="application/json-patch+json"
    )
    assert json_patched.data == {"c": "y"}


def test_watch_resumes_and_expires(k8s: Emulator, core: kubernetes.client.CoreV1Api) -> None:
    start = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "w1"}}
    ).metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "w2"}})
    core.patch_namespaced_config_map("w1", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w2", "default")
    watch = kubernetes.watch.Watch()
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in watch.stream(
            core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=1
        )
    ]
    assert seen == [("ADDED", "w2"), ("MODIFIED", "w1"), ("DELETED", "w2")]
    k8s.compact_history()
    with pytest.raises(ApiException) as expired:
        list(
            watch.stream(
                core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=1
            )
        )
    assert expired.value.status == 410
    assert "Expired" in str(expired.value.reason)
    live = core.list_namespaced_config_map(
        "default", watch=True, resource_version=str(k8s.store.rv), timeout_seconds=2, _preload_content=False
    )
    core.create_namespaced_config_map("default", {"metadata": {"name": "w3"}})
    first = json.loads(next(live.stream()).decode().splitlines()[0])
    live.release_conn()
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "w3")


def _get(url: str, accept: str = "application/json") -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_watch_path_form_history_limit_and_injected_expiry(
    k8s: Emulator, core: kubernetes.client.CoreV1Api
) -> None:
    first = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "h0"}}
    ).metadata.resource_version
    second = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "h1"}}
    ).metadata.resource_version
    core.patch_namespaced_config_map("h1", "default", {"data": {"a": "b"}})
    url = f"{k8s.url}/api/v1/watch/namespaces/default/configmaps?resourceVersion={second}&timeoutSeconds=0.3"
    status, _, raw = _get(url)
    events = [json.loads(line) for line in raw.splitlines()]
    assert status == 200 and [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "h1")
    ]
    k8s.history_limit = 2
    for i in range(3):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"more-{i}"}})
    _, _, raw = _get(url.replace(f"resourceVersion={second}", f"resourceVersion={first}"))
    (error,) = [json.loads(line) for line in raw.splitlines()]
    assert error["type"] == "ERROR"
    assert (error["object"]["code"], error["object"]["reason"]) == (410, "Expired")
    k8s.inject(method="GET", path="/configmaps$", status=410)
    watch = kubernetes.watch.Watch()
    with pytest.raises(ApiException) as expired:
        list(watch.stream(core.list_namespaced_config_map, "default", timeout_seconds=1))
    assert expired.value.status == 410


def test_table_output_and_namespace_cascade(k8s: Emulator, batch: kubernetes.client.BatchV1Api) -> None:
    batch.create_namespaced_job("default", job("tab", "pass", suspend=True))
    table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    _, ctype, raw = _get(f"{k8s.url}/apis/batch/v1/namespaces/default/jobs", table_accept)
    table = json.loads(raw)
    assert ctype.startswith("application/json") and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Completions", "Age"]
    assert table["rows"][0]["cells"][:2] == ["tab", "0/1"]
    plain = json.loads(_get(f"{k8s.url}/apis/batch/v1/namespaces/default/jobs")[2])
    assert plain["kind"] == "JobList" and plain["items"][0]["metadata"]["name"] == "tab"
    core = kubernetes.client.CoreV1Api(batch.api_client)
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_config_map("team", {"metadata": {"name": "c"}})
    core.delete_namespace("team")
    assert core.list_namespaced_config_map("team").items == []
    with pytest.raises(ApiException):
        core.read_namespace("team")


def test_deletecollection_by_label(core: kubernetes.client.CoreV1Api) -> None:
    for name, team in (("d1", "x"), ("d2", "x"), ("d3", "y")):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"team": team}}})
    core.delete_collection_namespaced_config_map("default", label_selector="team=x")
    remaining = [i.metadata.name for i in core.list_namespaced_config_map("default").items]
    assert "d3" in remaining and "d1" not in remaining and "d2" not in remaining


# fault injection, RBAC, CRDs, request log --------------------------------------------------------


def test_injected_faults(
    k8s: Emulator, batch: kubernetes.client.BatchV1Api, core: kubernetes.client.CoreV1Api
) -> None:
    k8s.inject(method="POST", path=r"/jobs$", status=403)
    with pytest.raises(ApiException) as denied:
        batch.create_namespaced_job("default", job("blocked", "pass"))
    assert denied.value.status == 403
    assert body(denied.value)["message"] == (
        'jobs.batch is forbidden: User "system:serviceaccount:default:workbench" '
        'cannot create resource "jobs" in API group "batch" in the namespace "default"'
    )
    batch.create_namespaced_job("default", job("blocked", "pass"))  # times=1: the next one passes
    k8s.inject(path="/configmaps", status=503, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as unavailable:
            core.list_namespaced_config_map("default")
        assert unavailable.value.status == 503
    core.list_namespaced_config_map("default")
    k8s.inject(path="/configmaps", status=None, delay=0.3)
    started = time.monotonic()
    core.list_namespaced_config_map("default")
    assert time.monotonic() - started >= 0.3


def test_self_subject_access_review(
    k8s: Emulator, k8s_client: kubernetes.client.ApiClient, batch: kubernetes.client.BatchV1Api
) -> None:
    k8s.deny("create", "jobs", "batch")
    authz = kubernetes.client.AuthorizationV1Api(k8s_client)

    def allowed(verb: str, resource: str, group: str = "") -> bool:
        review = {
            "spec": {
                "resourceAttributes": {
                    "namespace": "default",
                    "verb": verb,
                    "resource": resource,
                    "group": group,
                }
            }
        }
        return bool(authz.create_self_subject_access_review(review).status.allowed)

    assert allowed("create", "jobs", "batch") is False
    assert allowed("list", "jobs", "batch") is True
    assert allowed("create", "pods") is True
    with pytest.raises(ApiException) as denied:
        batch.create_namespaced_job("default", job("nope", "pass"))
    assert denied.value.status == 403 and "cannot create resource" in body(denied.value)["message"]


def test_custom_resources(k8s: Emulator, k8s_client: kubernetes.client.ApiClient) -> None:
    ext = kubernetes.client.ApiextensionsV1Api(k8s_client)
    crd = {
        "metadata": {"name": "daskclusters.kubernetes.dask.org"},
        "spec": {
            "group": "kubernetes.dask.org",
            "scope": "Namespaced",
            "names": {"plural": "daskclusters", "singular": "daskcluster", "kind": "DaskCluster"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    ext.create_custom_resource_definition(crd)
    custom = kubernetes.client.CustomObjectsApi(k8s_client)
    obj = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": "dc"},
        "spec": {"workers": 2},
    }
    made = custom.create_namespaced_custom_object("kubernetes.dask.org", "v1", "default", "daskclusters", obj)
    assert made["metadata"]["uid"]
    listed = custom.list_namespaced_custom_object("kubernetes.dask.org", "v1", "default", "daskclusters")
    assert [i["spec"]["workers"] for i in listed["items"]] == [2]
    resources = kubernetes.client.CustomObjectsApi(k8s_client).get_api_resources("kubernetes.dask.org", "v1")
    assert [r.name for r in resources.resources] == ["daskclusters"]
    k8s.add_crd("example.org", "v1alpha1", "widgets", "Widget", namespaced=False)
    custom.create_cluster_custom_object("example.org", "v1alpha1", "widgets", {"metadata": {"name": "w"}})
    assert custom.get_cluster_custom_object("example.org", "v1alpha1", "widgets", "w")["kind"] == "Widget"
    ext.delete_custom_resource_definition("daskclusters.kubernetes.dask.org")
    with pytest.raises(ApiException) as gone:
        custom.list_namespaced_custom_object("kubernetes.dask.org", "v1", "default", "daskclusters")
    assert gone.value.status == 404


def test_request_log_counts_calls(k8s: Emulator, core: kubernetes.client.CoreV1Api) -> None:
    k8s.reset_requests()
    for _ in range(3):
        core.list_namespaced_pod("default", label_selector="a=b")
    core.read_namespace("default")
    assert k8s.count("GET", r"/pods$") == 3
    assert len(k8s.requests) == 4
    method, path, query = k8s.requests[0]
    assert (method, path, query["labelSelector"]) == ("GET", "/api/v1/namespaces/default/pods", "a=b")


def test_kubeconfig_loads_with_the_official_loader(k8s: Emulator, kubeconfig: Path) -> None:
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig), context="emulator")
    try:
        names = [n.metadata.name for n in kubernetes.client.CoreV1Api(client).list_namespace().items]
    finally:
        client.close()
    assert "default" in names


# kubectl ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl is not installed")
def test_kubectl_get_pods_by_label(k8s: Emulator, core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_pod(
        "default", pod("managed", ["sleep", "30"], {"app.kubernetes.io/managed-by": "jupyter-ml-workbench"})
    )
    core.create_namespaced_pod("default", pod("unmanaged", ["sleep", "30"]))
    result = run_kubectl(
        k8s, f"--server={k8s.url}", "get", "pods", "-l", "app.kubernetes.io/managed-by=jupyter-ml-workbench"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[0] for line in lines[1:]] == ["managed"]


@pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl is not installed")
def test_kubectl_apply_creates_then_patches(
    k8s: Emulator, core: kubernetes.client.CoreV1Api, tmp_path: Path
) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  key: one\n")
    first = run_kubectl(k8s, "apply", "-f", str(manifest))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "configmap/applied created"
    assert core.read_namespaced_config_map("applied", "default").data == {"key": "one"}
    manifest.write_text(manifest.read_text().replace("one", "two"))
    second = run_kubectl(k8s, "apply", "-f", str(manifest))
    assert second.returncode == 0, second.stderr
    assert core.read_namespaced_config_map("applied", "default").data == {"key": "two"}

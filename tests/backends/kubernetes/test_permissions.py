"""What the backend asks of the API server: RBAC coverage (every kind, endpoints included), doctor,
watches, the request budget."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.k8s.dask_operator import GROUP, install_dask_operator
from tests.k8s.emulator import Emulator
from tests.k8s.fixtures import run_kubectl
from tests.k8s.kserve import install_kserve
from tests.k8s.pytorch_operator import install_pytorch_operator
from tests.k8s.trainer_operator import install_trainer_operator
from workbench.backends.kubernetes.settings import CLUSTER_PERMISSIONS, NAMESPACED_PERMISSIONS
from workbench.backends.kubernetes.tracker import Tracker
from workbench.service import Service

_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/[^/]+)?/(?P<resource>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>proxy)(?:/.*)?|/(?P<other>[^/]+))?)?$"
)
#: API discovery (which resources a group serves) needs no RBAC rule: every user may ask
_DISCOVERY = re.compile(r"^/(version|api|apis(/[^/]+/[^/]+)?)$")


def permissions_used(requests: list[tuple[str, str, dict[str, str]]]) -> set[tuple[str, str, str]]:
    """(verb, group, resource[/subresource]) for every resource request, as RBAC sees it."""
    used = set()
    for method, path, query in requests:
        match = _PATH.match(path)
        if not match:
            assert _DISCOVERY.match(path), path  # the only non-resource requests
            continue
        group, resource, name = match["group"] or "", match["resource"], match["name"]
        sub = match["sub"] or match["other"]
        if sub:
            resource = f"{resource}/{sub}"
        if method == "GET":
            verb = "watch" if query.get("watch") in ("true", "1") else ("get" if name else "list")
        elif sub == "proxy" and method in ("HEAD", "OPTIONS"):
            verb = "get"
        else:
            verb = {
                "POST": "create",
                "PATCH": "patch",
                "PUT": "update",
                "DELETE": "delete" if name else "deletecollection",
            }[method]
        used.add((verb, group, resource))
    return used


CRONJOB_CHANGES = {
    ("create", "batch", "cronjobs"),
    ("delete", "batch", "cronjobs"),
    ("patch", "batch", "cronjobs"),
}
#: what only endpoints (serve workloads) use
SERVE_GROUPS = ("apps", "autoscaling", "policy", "serving.kserve.io")
SERVE_ONLY = {("get", "", "configmaps"), ("list", "", "configmaps")}


def granted(table: tuple[tuple[str, str, tuple[str, ...]], ...]) -> set[tuple[str, str, str]]:
    return {(verb, group, resource) for group, resource, verbs in table for verb in verbs}


def dask_flow(kube: Service) -> None:
    """Every Dask operation: launch with adapt, address, logs, scale, adapt again, cancel, remove."""
    cluster = kube.launch({"kind": "dask", "workers": 1, "adapt": "1:2"})
    kube.dask_address(cluster.id, timeout=60)
    "".join(kube.logs(cluster.id))
    kube.scale(cluster.id, 2)
    kube.adapt(cluster.id, 1, 3)
    kube.adapt(cluster.id, 1, 2)
    kube.cancel(cluster.id)
    kube.delete(cluster.id)
    kube.list()


#: Kubeflow Trainer v2
TRAINER = "trainer.kubeflow.org"
#: what a launch reads cluster-wide besides the nodes: the TrainJob's runtime (optional rules)
CLUSTER_READS = {("list", "", "nodes"), ("get", TRAINER, "clustertrainingruntimes")}


def train_flow(kube: Service, k8s: Emulator) -> None:
    """Every train operation, on an Indexed Job, a PyTorchJob and a TrainJob: logs, results, rm,
    cancel."""
    job = kube.launch({"kind": "train", "code": "v = 1", "nodes": 2, "get": "v"})
    "".join(kube.logs(job.id, follow=True))
    kube.wait(job.id, timeout=60)
    assert kube.results(job.id) == {"v": 1}
    "".join(kube.logs(job.id))
    kube.delete(job.id)
    install_pytorch_operator(k8s)
    trained = kube.launch({"kind": "train", "code": "v = 2", "nodes": 2, "get": "v", "operator": "kubeflow"})
    "".join(kube.logs(trained.id, follow=True))
    kube.wait(trained.id, timeout=60)
    assert kube.results(trained.id) == {"v": 2}
    "".join(kube.logs(trained.id))
    kube.delete(trained.id)
    kubeflow = kube.launch({"kind": "train", "code": "pass", "nodes": 2, "operator": "kubeflow"})
    kube.get(kubeflow.id)
    kube.cancel(kubeflow.id)
    kube.delete(kubeflow.id)
    install_trainer_operator(k8s)
    trainjob = kube.launch({"kind": "train", "code": "v = 3", "nodes": 2, "get": "v", "operator": "kubeflow"})
    "".join(kube.logs(trainjob.id, follow=True))
    kube.wait(trainjob.id, timeout=60)
    assert kube.results(trainjob.id) == {"v": 3}
    "".join(kube.logs(trainjob.id))
    kube.list()
    kube.delete(trainjob.id)
    cancelled = kube.launch({"kind": "train", "code": "pass", "nodes": 2, "operator": "kubeflow"})
    kube.get(cancelled.id)
    kube.cancel(cancelled.id)
    kube.delete(cancelled.id)


def notebook_flow(kube: Service, k8s: Emulator, folder: Path) -> None:
    """Every notebook operation: a run (logs, rm) and a schedule (a fired run, logs, cancel, rm)."""
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nb.cells.append(nbformat.v4.new_code_cell("print('ran')"))
    nbformat.write(nb, str(folder / "nb.ipynb"))  # type: ignore[no-untyped-call]
    fields = {"kind": "notebook", "notebook": str(folder / "nb.ipynb"), "output": f"file://{folder}/runs"}
    run = kube.launch(fields)
    "".join(kube.logs(run.id, follow=True))
    kube.wait(run.id, timeout=60)
    schedule = kube.launch({**fields, "schedule": "0 3 * * *", "name": "nightly"})
    job = k8s.fire_cronjob("nightly")
    deadline = time.monotonic() + 60
    while "last run" not in kube.get(schedule.id).message:
        assert time.monotonic() < deadline, (job, kube.get(schedule.id).message)
        time.sleep(0.05)
    "".join(kube.logs(schedule.id))
    assert kube.pause(schedule.id).info["schedule"]["suspended"] is True
    assert kube.resume(schedule.id).info["schedule"]["suspended"] is False
    assert [run["name"] for run in kube.schedule_runs(schedule.id)] == [job]
    kube.cancel(schedule.id)
    for name in (run.id, schedule.id):
        kube.delete(name)


def serve_flow(kube: Service, k8s: Emulator) -> None:
    """Every endpoint operation, on a Deployment and on a KServe InferenceService."""
    k8s.probe_scale = 0.1
    kube.launch({"kind": "serve", "code": "def predict(x):\n    return x\n", "name": "ep"})
    kube.rollout_status("ep", timeout=120)
    kube.predict("ep", [[1.0]])
    kube.endpoint_request("ep", "GET", "/v2/health/ready")
    kube.rollout("ep", {"env": {"LEVEL": "2"}}, timeout=120)
    kube.scale_endpoint("ep", autoscale="1:2")
    kube.scale_endpoint("ep", replicas=1)
    kube.undo("ep", timeout=120)
    kube.rollout_history("ep")
    "".join(kube.logs("ep"))
    kube.cancel("ep")
    kube.delete("ep")
    install_kserve(k8s, controller=False)  # stored only: no pod runs
    kube.launch(
        {"kind": "serve", "code": "def predict(x):\n    return x\n", "name": "ks", "operator": "kserve"}
    )
    kube.rollout_status("ks", wait=False)
    kube.scale_endpoint("ks", replicas=2)
    kube.cancel("ks")
    kube.delete("ks")


def test_the_rbac_role_covers_every_verb_used_and_nothing_more(
    kube: Service, k8s: Emulator, tmp_path: Path
) -> None:
    ok = kube.launch({"kind": "pod", "code": "print('hi')\nv = 1", "get": "v"})
    "".join(kube.logs(ok.id, follow=True))
    kube.wait(ok.id, timeout=60)
    assert kube.results(ok.id) == {"v": 1}
    failing = kube.launch({"kind": "pod", "code": "raise SystemExit(2)"})
    kube.wait(failing.id, timeout=60)
    sleeper = kube.launch({"kind": "pod", "code": "import time\ntime.sleep(300)"})
    kube.usage(sleeper.id)  # its PodMetrics (the emulator has no metrics.k8s.io: asked all the same)
    kube.cancel(sleeper.id)
    for name in (ok.id, failing.id, sleeper.id):
        kube.delete(name)
    kube.list()
    used = permissions_used(k8s.requests)
    # pods alone touch no Dask or Kubeflow resource, nor Services (a Dask scheduler's, a train job's),
    # and create or delete no CronJob (a scheduled notebook's; the tracker lists and watches them)
    others = {
        p
        for p in granted(NAMESPACED_PERMISSIONS)
        if p[1] in (GROUP, "kubeflow.org", TRAINER, *SERVE_GROUPS)
        or p[2] in ("services", "services/proxy")
        or p in CRONJOB_CHANGES | SERVE_ONLY
    }
    assert used == granted(NAMESPACED_PERMISSIONS) - others | {("list", "", "nodes")}
    assert granted(CLUSTER_PERMISSIONS) >= CLUSTER_READS
    install_dask_operator(k8s)
    k8s.reset_requests()
    dask_flow(kube)
    dask_used = permissions_used(k8s.requests)
    assert dask_used >= {p for p in others if p[1] == GROUP}
    k8s.reset_requests()
    train_flow(kube, k8s)
    train_used = permissions_used(k8s.requests)
    train_only = {
        p for p in others if p[1] in ("kubeflow.org", TRAINER) or (p[2] == "services" and p[0] != "get")
    }
    assert train_used >= train_only
    k8s.reset_requests()
    notebook_flow(kube, k8s, tmp_path)
    notebook_used = permissions_used(k8s.requests)
    assert notebook_used >= CRONJOB_CHANGES
    k8s.reset_requests()
    serve_flow(kube, k8s)
    serve_used = permissions_used(k8s.requests)
    assert serve_used >= {p for p in others if p[1] in SERVE_GROUPS or p[2] == "services/proxy"} | SERVE_ONLY
    assert (
        used | dask_used | train_used | notebook_used | serve_used
        == granted(NAMESPACED_PERMISSIONS) | CLUSTER_READS
    )


def test_printed_rbac_applies_with_kubectl(kube_env: object, k8s: Emulator) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "rbac", "--namespace", "default"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [d["kind"] for d in yaml.safe_load_all(printed)] == [
        "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
    ]  # fmt: skip
    applied = run_kubectl(k8s, "apply", "-f", "-", stdin=printed)
    assert applied.returncode == 0, applied.stderr
    role = k8s.get("roles", "jupyter-ml-workbench", group="rbac.authorization.k8s.io")
    assert role is not None and len(role["rules"]) == len(NAMESPACED_PERMISSIONS)


def test_dry_run_manifests_apply_with_kubectl(kube_env: object, k8s: Emulator, tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "train.py").write_text("print('training')\n")
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "run",
            "train.py",
            "--name",
            "gitops",
            "--cpu",
            "1",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        cwd=folder,
        check=True,
    ).stdout
    assert k8s.count() == 0  # a dry run talks to no cluster
    applied = run_kubectl(k8s, "apply", "-f", "-", stdin=printed)
    assert applied.returncode == 0, applied.stderr
    deadline = time.monotonic() + 30
    while (k8s.get("jobs", "gitops", group="batch") or {}).get("status", {}).get("succeeded") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_doctor_reports_permissions_operators_and_gpus(kube_env: object, k8s: Emulator) -> None:
    k8s.set_nodes([{"name": "gpu-1", "allocatable": {"cpu": "32", "memory": "128Gi", "nvidia.com/gpu": "4"}}])
    k8s.add_crd("kueue.x-k8s.io", "v1beta1", "localqueues", "LocalQueue")
    result = subprocess.run([sys.executable, "-m", "workbench.cli", "doctor"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"\[  ok\] kubernetes +API server v1\.33", out)
    assert re.search(r"\[  ok\] permissions +every verb the backend uses is allowed", out)
    assert re.search(r"\[  ok\] Kueue \(--queue\) +installed", out)
    assert re.search(r"\[info\] Dask operator \(dask workloads\) +not found", out)
    assert re.search(r"\[  ok\] GPU capacity +4 nvidia.com/gpu on 1 nodes", out)
    k8s.deny("create", "jobs", "batch")
    denied = subprocess.run([sys.executable, "-m", "workbench.cli", "doctor"], capture_output=True, text=True)
    assert denied.returncode == 1
    assert re.search(r"\[FAIL\] permissions +missing: create jobs", denied.stdout)


def _lists(k8s: Emulator) -> int:
    return sum(1 for m, p, q in k8s.requests if m == "GET" and p.endswith("/jobs") and "watch" not in q)


def test_tracker_lists_again_after_410(kube: Service, k8s: Emulator) -> None:
    client = kube.backend("kubernetes").client  # type: ignore[attr-defined]
    tracker = Tracker(
        client, "app.kubernetes.io/managed-by=jupyter-ml-workbench", kinds=("Job",), watch_timeout=1
    )
    tracker.watch()
    first = kube.launch({"kind": "pod", "code": "pass", "name": "first"})
    assert tracker.wait(lambda: bool(tracker.objects("Job", fresh=False)), timeout=20)
    before = _lists(k8s)
    k8s.inject(
        "GET", r"/jobs$", status=410, times=1
    )  # the watch's next reconnect is told its version expired
    names = lambda: {j["metadata"]["name"] for j in tracker.objects("Job", fresh=False)}  # noqa: E731
    deadline = time.monotonic() + 20
    while _lists(k8s) == before:
        assert time.monotonic() < deadline, "no list after the 410"
        time.sleep(0.05)
    second = kube.launch({"kind": "pod", "code": "pass", "name": "second"})
    assert tracker.wait(lambda: names() >= {first.id, second.id}, timeout=30)
    tracker.stop()


def test_watch_from_a_compacted_version_raises_expired(kube: Service, k8s: Emulator) -> None:
    from workbench.backends.kubernetes.client import Expired

    client = kube.backend("kubernetes").client  # type: ignore[attr-defined]
    _, version = client.list("Job")
    kube.launch({"kind": "pod", "code": "pass"})
    k8s.compact_history()
    try:
        for _ in client.watch("Job", selector=None, resource_version=version, timeout=2):
            pass
    except Expired as exc:
        assert str(exc).startswith("too old resource version")
    else:
        raise AssertionError("a watch from a compacted version must raise Expired")

"""MLflow tracking (--track), against a real ``mlflow server`` with a SQLite store on loopback.

Every tracked workload is a run created before it starts (name, params, tags by value), its
own ``mlflow.log_metric`` and ``workbench.log_metric`` land there, and its end is mirrored
(FINISHED / FAILED / KILLED, artifacts). A server that is down costs one warning line and
nothing else; the untracked path never imports MLflow.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from workbench.cli import main
from workbench.config import load_settings
from workbench.errors import SpecError
from workbench.service import Service
from workbench.store import Workload

from ..backends.local.test_notebook import write_notebook
from ..conftest import assert_nothing_created
from .conftest import free_port

WARNING = "workbench: warning: MLflow at "
TAIL = "metrics stay in provenance.json"
# MLflow's SQLite store configures SQLAlchemy mappers with an option SQLAlchemy deprecates
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def _ended_run(service: Service, workload_id: str, timeout: float = 30.0) -> Any:
    """The workload's MLflow run once its end is recorded there (after the workload's own end)."""
    deadline = time.monotonic() + timeout
    while True:
        tracked = service.get(workload_id).info["mlflow"]
        if tracked.get("ended"):
            assert "end_error" not in tracked, tracked
            return MlflowClient(tracked["tracking_uri"]).get_run(tracked["run_id"])
        assert time.monotonic() < deadline, f"the run of {workload_id} was not ended: {tracked}"
        time.sleep(0.1)


def _artifact(client: MlflowClient, run_id: str, name: str, into: Path) -> str:
    return Path(client.download_artifacts(run_id, name, str(into))).read_text()


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_with_the_server_down_the_run_succeeds_with_one_warning(
    wb_home: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    write_notebook(
        tmp_path / "nb.ipynb", "import workbench\nworkbench.log_metric('score', x * 3)", parameters="x = 1"
    )
    svc = Service(load_settings(mlflow={"tracking_uri": down}))
    try:
        started = time.monotonic()
        launched = svc.launch(
            {"kind": "notebook", "notebook": "nb.ipynb", "parameters": {"x": 2}}, cwd=str(tmp_path)
        )
        assert time.monotonic() - started < 10  # nothing waits on the server
        final = svc.wait(launched.id, timeout=90)
    finally:
        svc.close()
    assert final.status == "succeeded", final.message
    assert "mlflow" not in final.info
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith(WARNING)]
    assert lines == [f"{WARNING}{down} unreachable (Connection refused); the run is not tracked, " + TAIL]
    manifest = json.loads((Path(final.run_dir) / "provenance.json").read_text())
    assert manifest["metrics"] == {"score": 6}
    assert "mlflow_run_id" not in manifest


def test_the_switches_that_turn_tracking_on(wb_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.tracking import target

    assert target(load_settings()) is None  # off by default
    embedded = target(load_settings(), track=True)  # --track: the embedded store
    assert embedded is not None and embedded.embedded and embedded.experiment == "workbench"
    assert embedded.uri == f"sqlite:///{wb_home.resolve() / 'mlflow.db'}"
    configured = target(load_settings(mlflow={}))  # an mlflow: section in the config
    assert configured == embedded
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")  # already in the environment
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team")
    from_env = target(load_settings())
    assert from_env is not None and (from_env.uri, from_env.experiment) == ("http://mlflow:5000", "team")
    explicit = target(load_settings(mlflow={"tracking_uri": "http://other:5000", "experiment": "x"}))
    assert explicit is not None and (explicit.uri, explicit.experiment) == ("http://other:5000", "x")


def test_log_metric_sends_to_the_run_from_rank_0_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench import metrics

    sent: list[tuple[str, Any, int | None]] = []
    monkeypatch.setattr(metrics, "_to_run", lambda *args: sent.append(args))
    monkeypatch.setenv("WORKBENCH_OUTPUT_DIR", str(tmp_path))
    metrics.log_metric("untracked", 1.0)
    monkeypatch.setenv("MLFLOW_RUN_ID", "abc")
    metrics.log_metric("loss", 0.5, step=2)
    monkeypatch.setenv("RANK", "1")
    metrics.log_metric("other-rank", 0.4)
    monkeypatch.setenv("RANK", "0")
    metrics.log_metric("rank-0", 0.3)
    assert sent == [("loss", 0.5, 2), ("rank-0", 0.3, None)]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4  # every one in the file


def test_a_silent_server_holds_a_launch_up_for_one_short_timeout(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from workbench.runtime import track_end

    monkeypatch.setattr(track_end, "REQUEST_TIMEOUT", 1)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)  # turns tracking on by itself
        started = time.monotonic()
        launched = service.launch({"kind": "pod", "code": "print('ran')"}, cwd=str(tmp_path))
        assert time.monotonic() - started < 5  # one request, one second (import aside)
    assert service.wait(launched.id, timeout=30).status == "succeeded"
    assert "mlflow" not in launched.info
    warned = [line for line in capfd.readouterr().err.splitlines() if line.startswith(WARNING)]
    assert warned == [f"{WARNING}{url} unreachable (read timed out); the run is not tracked, " + TAIL]


def test_without_mlflow_track_fails_in_one_line_and_creates_nothing(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    with pytest.raises(SpecError) as info:
        service.launch({"kind": "pod", "code": "print(1)", "track": True}, cwd=str(tmp_path))
    assert "pip install 'jupyter-ml-workbench[mlflow]'" in info.value.one_line()
    assert_nothing_created(service)
    (tmp_path / "job.py").write_text("print(1)\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "job.py", "--track"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'jupyter-ml-workbench[mlflow]'" in err
    assert_nothing_created(service)


def test_a_tracked_workload_may_not_set_the_run_variables(service: Service, tmp_path: Path) -> None:
    for name in ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
        with pytest.raises(SpecError, match=f"--env {name} is set by workbench"):
            service.launch(
                {"kind": "pod", "code": "print(1)", "track": True, "env": {name: "x"}}, cwd=str(tmp_path)
            )
    assert_nothing_created(service)


def test_the_embedded_store_is_private_and_ends_the_run(
    service: Service, wb_home: Path, tmp_path: Path
) -> None:
    launched = service.launch({"kind": "pod", "code": "print('embedded')", "track": True}, cwd=str(tmp_path))
    info = launched.info["mlflow"]
    assert info["tracking_uri"] == f"sqlite:///{wb_home.resolve() / 'mlflow.db'}"
    assert service.wait(launched.id, timeout=60).status == "succeeded"
    client = MlflowClient(info["tracking_uri"])
    run = _ended_run(service, launched.id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "workbench"
    assert run.info.artifact_uri.startswith((wb_home.resolve() / "mlartifacts").as_uri())
    assert "embedded" in _artifact(client, info["run_id"], "output.log", tmp_path / "dl")
    assert stat.S_IMODE((wb_home / "mlflow.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((wb_home / "mlartifacts").stat().st_mode) == 0o700


def test_the_untracked_path_never_imports_mlflow(wb_home: Path, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "InteractiveShell.instance().run_line_magic('load_ext', 'workbench')\n"
        "assert 'mlflow' not in sys.modules, 'imported by %load_ext'\n"
        "from workbench.service import Service\n"
        "service = Service()\n"
        "launched = service.launch({'kind': 'pod', 'code': 'print(1)'})\n"
        "final = service.wait(launched.id, timeout=60)\n"
        "assert final.status == 'succeeded' and 'mlflow' not in final.info, final\n"
        "assert 'mlflow' not in sys.modules, 'imported by an untracked launch'\n"
        "print('clean')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stderr


def test_pods_on_a_cluster_get_the_run_variables() -> None:
    from workbench.backends.base import Payload
    from workbench.backends.kubernetes.build import build_manifests, kube_settings
    from workbench.spec import parse_spec

    settings = load_settings()
    spec = parse_spec({"kind": "pod", "code": "print(1)", "track": True})
    env = {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_RUN_ID": "abc", "MLFLOW_EXPERIMENT_ID": "1"}
    payload = Payload(code="print(1)", extra={"env": env})
    docs = build_manifests("wl-1", spec, payload, settings, kube_settings(settings))
    containers = docs[-1]["spec"]["template"]["spec"]["containers"]
    for container in containers:
        given = {entry["name"]: entry.get("value") for entry in container["env"]}
        assert {name: given.get(name) for name in env} == env


def test_mlflow_ui_serves_the_embedded_store_on_loopback(
    service: Service, wb_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.cli_mlflow import ui_argv

    argv = ui_argv(f"sqlite:///{wb_home / 'mlflow.db'}", wb_home / "mlartifacts", 5001)
    assert Path(argv[0]).name == "mlflow" and argv[1] == "ui"
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert options["--host"] == "127.0.0.1" and options["--port"] == "5001"
    assert options["--backend-store-uri"] == f"sqlite:///{wb_home / 'mlflow.db'}"
    assert options["--default-artifact-root"] == (wb_home / "mlartifacts").as_uri()
    assert main(["mlflow", "ui", "--port", "70000"]) == 2
    assert "must be a TCP port" in capsys.readouterr().err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:secret@mlflow.example.org:5000")
    assert main(["mlflow", "ui"]) == 0  # a server has a UI of its own
    assert "at http://mlflow.example.org:5000; its UI is there" in capsys.readouterr().out


def test_a_tracked_pod_is_a_run_with_its_tags_status_and_log(tracked: Service, tmp_path: Path) -> None:
    code = "import os\nprint('hello', os.environ['MLFLOW_RUN_ID'], os.environ['MLFLOW_EXPERIMENT_ID'])\n"
    launched = tracked.launch({"kind": "pod", "code": code, "track": True}, cwd=str(tmp_path))
    info = launched.info["mlflow"]
    assert set(info) >= {"run_id", "experiment_id", "tracking_uri", "url"}
    assert info["tracking_uri"] == tracked.settings.mlflow.tracking_uri  # type: ignore[union-attr]
    assert info["url"].endswith(f"/#/experiments/{info['experiment_id']}/runs/{info['run_id']}")
    final = tracked.wait(launched.id, timeout=60)
    assert final.status == "succeeded"

    client = MlflowClient(info["tracking_uri"])
    run = _ended_run(tracked, launched.id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == launched.id
    assert client.get_experiment(run.info.experiment_id).name == "tests"
    tags = run.data.tags
    assert tags["mlflow.runName"] == launched.id
    assert tags["mlflow.source.name"] == "cell"
    assert tags["mlflow.source.type"] == "JOB"
    assert tags["mlflow.user"] == tracked.settings.owner
    assert tags["workbench.workload_id"] == launched.id
    assert tags["workbench.kind"] == "pod"
    assert tags["workbench.backend"] == "local"
    assert tags["workbench.image"] == tracked.settings.image
    assert run.data.params == {"resources.gpus": "0"}
    log = _artifact(client, info["run_id"], "output.log", tmp_path / "dl")
    assert f"hello {info['run_id']} {info['experiment_id']}" in log
    assert tracked.get(launched.id).info["mlflow"]["ended"]  # ended once: nobody ends it again


def test_a_tracked_notebook_run_has_params_metrics_artifacts_and_its_commit(
    tracked: Service, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    body = (
        "import mlflow, workbench\n"
        "workbench.log_metric('loss', lr * 2, step=1)\n"
        "mlflow.log_metric('acc', 0.75)\n"
        "print('trained', lr)\n"
    )
    notebook = write_notebook(repo / "train.ipynb", body, parameters="lr = 0.1")
    _git(repo, "init", "-q")
    _git(repo, "add", "train.ipynb")
    _git(repo, "commit", "-q", "-m", "the notebook")
    commit = _git(repo, "rev-parse", "HEAD")

    launched = tracked.launch(
        {
            "kind": "notebook",
            "notebook": "train.ipynb",
            "parameters": {"lr": 0.25},
            "resources": {"cpu": "1"},
            "track": True,
        },
        cwd=str(repo),
    )
    final = tracked.wait(launched.id, timeout=90)
    assert final.status == "succeeded", final.message
    info = final.info["mlflow"]
    client = MlflowClient(info["tracking_uri"])
    run = _ended_run(tracked, launched.id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.25", "resources.cpu": "1", "resources.gpus": "0"}
    assert run.data.metrics == {"loss": 0.5, "acc": 0.75}
    tags = run.data.tags
    assert tags["mlflow.source.name"] == str(notebook)  # not the kernel's launcher
    assert tags["mlflow.source.type"] == "NOTEBOOK"
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["workbench.kind"] == "notebook"
    names = {item.path for item in client.list_artifacts(info["run_id"])}
    assert {"output.ipynb", "provenance.json", "output.log"} <= names
    manifest = json.loads(_artifact(client, info["run_id"], "provenance.json", tmp_path / "dl"))
    assert manifest["metrics"] == {"loss": 0.5}
    assert manifest["mlflow_run_id"] == info["run_id"]
    assert "trained 0.25" in _artifact(client, info["run_id"], "output.ipynb", tmp_path / "dl")


def test_failed_runs_are_failed_and_a_cancelled_one_killed(tracked: Service, tmp_path: Path) -> None:
    def sleeper() -> Workload:
        code = "import time\nprint('up', flush=True)\ntime.sleep(60)"
        return tracked.launch({"kind": "pod", "code": code, "track": True}, cwd=str(tmp_path))

    failing = tracked.launch({"kind": "pod", "code": "raise SystemExit(3)", "track": True}, cwd=str(tmp_path))
    cancelled, orphaned = sleeper(), sleeper()
    deadline = time.monotonic() + 30
    while not all("up" in "".join(tracked.logs(w.id)) for w in (cancelled, orphaned)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert tracked.cancel(cancelled.id).status == "cancelled"
    # its supervisor killed: the guard records the end, and the service ends the run
    os.kill(tracked.get(orphaned.id).supervisor_pid or 0, signal.SIGKILL)
    assert tracked.wait(orphaned.id, timeout=30).status == "failed"
    assert tracked.wait(failing.id, timeout=60).status == "failed"
    assert _ended_run(tracked, failing.id).info.status == "FAILED"
    assert _ended_run(tracked, cancelled.id).info.status == "KILLED"
    assert _ended_run(tracked, orphaned.id).info.status == "FAILED"
    client = MlflowClient(orphaned.info["mlflow"]["tracking_uri"])
    assert "up" in _artifact(client, orphaned.info["mlflow"]["run_id"], "output.log", tmp_path / "dl")


def test_a_tracked_pod_on_kubernetes_logs_from_its_pod_and_is_ended_by_the_service(
    server: str, kube_env: Path, k8s: Any, tmp_path: Path
) -> None:
    """The kubernetes backend against the API emulator (whose kubelet runs the pod's process
    here): the pod gets the run variables and logs to the server itself; the service ends the
    run, with the pod's log as an artifact, when it next sees the record final."""
    svc = Service(load_settings(mlflow={"tracking_uri": server, "experiment": "tests-k8s"}))
    try:
        code = "import workbench\nworkbench.log_metric('loss', 0.25)\nprint('trained on the cluster')"
        launched = svc.launch({"kind": "pod", "name": "kube-tracked", "code": code})
        assert launched.backend == "kubernetes"
        final = svc.wait(launched.id, timeout=120)  # reading the final record ends the run
        assert final.status == "succeeded", final.message
        run = _ended_run(svc, launched.id)
    finally:
        svc.close()
    assert run.info.status == "FINISHED"
    assert run.data.tags["workbench.backend"] == "kubernetes"
    assert run.data.metrics == {"loss": 0.25}  # logged from inside the pod
    log = _artifact(MlflowClient(server), run.info.run_id, "output.log", tmp_path)
    assert "trained on the cluster" in log

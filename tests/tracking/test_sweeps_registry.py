"""Sweeps as MLflow parent and child runs, and registry models served by ``models:/`` URIs,
against the real ``mlflow server`` of this directory's conftest."""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from workbench.cli import main
from workbench.errors import SpecError
from workbench.service import Service
from workbench.sweeps import sweep

from ..backends.local.test_notebook import write_notebook
from ..conftest import assert_nothing_created

pytestmark = [
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*type hints to the `predict` method:UserWarning"),
]

NOTEBOOK = (
    "import workbench\n"
    "assert not (lr > 0.15 and seed == 0), 'diverged'\n"
    "workbench.log_metric('score', lr * seed)"
)


def _children(client: MlflowClient, parent: mlflow.entities.Run) -> list[mlflow.entities.Run]:
    return client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )


def test_a_tracked_sweep_is_one_parent_run_with_a_child_run_per_point(
    tracked: Service, server: str, tmp_path: Path
) -> None:
    write_notebook(tmp_path / "train.ipynb", NOTEBOOK, parameters="lr = 0.1\nseed = 0")
    spec = {"kind": "notebook", "notebook": "train.ipynb", "name": "lr-sweep"}
    result = sweep(spec, {"lr": [0.1, 0.2], "seed": [0, 1]}, parallel=2, cwd=str(tmp_path), service=tracked)
    statuses = [w.status for w in result.records()]
    assert statuses == ["succeeded", "succeeded", "failed", "succeeded"]  # lr=0.2, seed=0 diverges
    parents = {w.info["mlflow"]["parent_run_id"] for w in result.records()}
    assert len(parents) == 1
    client = MlflowClient(server)
    parent = client.get_run(parents.pop())
    assert parent.info.run_name == "lr-sweep"
    assert parent.data.params == {"sweep.lr": "[0.1, 0.2]", "sweep.seed": "[0, 1]"}
    assert parent.data.tags["workbench.kind"] == "sweep"
    assert parent.data.tags["mlflow.source.name"] == str(tmp_path / "train.ipynb")
    assert parent.data.tags["workbench.sweep.runs"] == "4"
    assert parent.info.status == "FAILED"  # one point failed
    children = {run.info.run_name: run for run in _children(client, parent)}
    assert sorted(children) == ["lr-sweep-0", "lr-sweep-1", "lr-sweep-2", "lr-sweep-3"]
    assert children["lr-sweep-3"].data.params["lr"] == "0.2"
    assert children["lr-sweep-3"].data.metrics["score"] == pytest.approx(0.2)
    assert children["lr-sweep-1"].data.metrics["score"] == pytest.approx(0.1)


def test_a_sweep_from_the_command_line_ends_its_parent_finished(
    tracked: Service, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_notebook(tmp_path / "train.ipynb", NOTEBOOK, parameters="lr = 0.1\nseed = 1")
    monkeypatch.chdir(tmp_path)
    argv = ["notebook", "run", "train.ipynb", "--track", "--sweep", "lr=0.1,0.12", "--parallel", "2"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    assert main(argv) == 0
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("workbench")
    assert experiment is not None
    parents = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`workbench.kind` = 'sweep'", max_results=5
    )
    parent = next(p for p in parents if p.data.params.get("sweep.lr") == '["0.1", "0.12"]')
    assert parent.info.run_name.startswith("sweep-train-")
    assert parent.info.status == "FINISHED"
    children = _children(client, parent)
    assert sorted(float(run.data.params["lr"]) for run in children) == [0.1, 0.12]
    assert all(run.data.tags["mlflow.parentRunId"] == parent.info.run_id for run in children)


with warnings.catch_warnings():  # MLflow suggests type hints for predict() when it sees none
    warnings.simplefilter("ignore", UserWarning)

    class _Scaled(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        """A pyfunc model: every input times ``factor`` (one model per registered version)."""

        def __init__(self, factor: float) -> None:
            self.factor = factor

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def] # untyped: MLflow reads hints
            return np.asarray(model_input, dtype=float) * self.factor


@contextlib.contextmanager
def _tracking(uri: str) -> Iterator[None]:
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before or "")


def _register(server: str, name: str, factor: float) -> str:
    """Log a pyfunc model in a run and register it; its version."""
    with _tracking(server), mlflow.start_run(run_name=f"{name}-x{factor}"):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=_Scaled(factor), registered_model_name=name, pip_requirements=[]
        )  # no requirements inferred: that would run the model in a subprocess
    return str(info.registered_model_version)


def test_a_registered_model_is_served_by_name_and_rolled_to_its_next_version(
    tracked: Service, server: str
) -> None:
    name = "tests-scaler"
    assert _register(server, name, 2.0) == "1"
    MlflowClient(server).set_registered_model_alias(name, "champion", "1")
    endpoint = tracked.launch({"kind": "serve", "name": "scaler", "model_uri": f"models:/{name}@champion"})
    assert endpoint.spec["model_uri"] == f"models:/{name}/1"  # the alias pinned to the version it names
    assert endpoint.spec["env"]["MLFLOW_TRACKING_URI"] == server
    tracked.rollout_status("scaler", timeout=120)
    np.testing.assert_allclose(tracked.predict("scaler", np.array([[1.0, 2.0]])), [[2.0, 4.0]])
    np.testing.assert_allclose(tracked.predict("scaler", [[3.0]], protocol="v1"), [[6.0]])

    assert _register(server, name, 10.0) == "2"
    tracked.rollout("scaler", {"model_uri": f"models:/{name}/latest"}, timeout=120)
    np.testing.assert_allclose(tracked.predict("scaler", np.array([[1.0, 2.0]])), [[10.0, 20.0]])
    history = tracked.rollout_history("scaler")
    assert [h["model_uri"] for h in history] == [f"models:/{name}/1", f"models:/{name}/2"]
    assert history[-1]["cause"] == f"model models:/{name}/latest (version 2)"

    with pytest.raises(SpecError, match=r"has no version 7 in the registry at .*versions there: 1, 2"):
        tracked.rollout("scaler", {"model_uri": f"models:/{name}/7"})
    assert len(tracked.rollout_history("scaler")) == 2  # nothing was made of it
    tracked.cancel("scaler")


def test_a_missing_model_or_registry_is_one_line_and_creates_nothing(
    tracked: Service, server: str, service: Service
) -> None:
    with pytest.raises(SpecError, match=r"model 'no-such-model' has no versions in the registry") as info:
        tracked.launch({"kind": "serve", "model_uri": "models:/no-such-model/1"})
    assert "\n" not in str(info.value)
    with pytest.raises(SpecError, match=r"must be models:/NAME/VERSION, models:/NAME@alias"):
        tracked.launch({"kind": "serve", "model_uri": "models:/a/b/c"})
    down = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # nothing listens on the discard port
    with pytest.raises(SpecError, match=r"cannot read the model registry at http://127.0.0.1:9"):
        service.launch({"kind": "serve", "model_uri": "models:/m/1", "env": down})  # untracked
    assert_nothing_created(tracked)


def test_serve_without_file_needs_an_mlflow_model(wb_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--model-uri", "s3://bucket/model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "workbench: error: workbench serve needs FILE, a .py that defines the model, or an MLflow model"
        " — e.g. workbench serve model.py, or workbench serve --model-uri models:/NAME/VERSION"
    )


def test_describe_links_the_run(tracked: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    launched = tracked.launch({"kind": "pod", "code": "print('hi')", "track": True}, cwd=str(tmp_path))
    url = launched.info["mlflow"]["url"]
    assert url.startswith("http://127.0.0.1:") and launched.info["mlflow"]["run_id"] in url
    tracked.wait(launched.id, timeout=60)
    assert main(["describe", launched.id]) == 0
    out = capsys.readouterr().out
    assert f"mlflow:\n  url: {url}\n  run_id: {launched.info['mlflow']['run_id']}" in out
    assert json.loads(main_json(launched.id))["info"]["mlflow"]["url"] == url


def main_json(name: str) -> str:
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["describe", name, "-o", "json"]) == 0
    return buffer.getvalue()

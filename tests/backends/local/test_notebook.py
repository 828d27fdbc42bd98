"""Notebook runs on the local backend: papermill in supervised processes, with provenance.

The notebooks are written here with nbformat; the papermill behaviours (sys.exit, a failing
line magic, no parameters cell) are compared with plain papermill run on the same notebook.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import nbformat
import pytest

from workbench.errors import SpecError
from workbench.notebooks import UndeclaredParameterWarning
from workbench.service import Service

from ...conftest import assert_nothing_created

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_notebook(path: Path, *cells: str, parameters: str | None = None, filler: int = 0) -> Path:
    """A python3 notebook: a ``parameters`` cell (when given), the code cells, and a markdown
    cell of ``filler`` characters (to make it large)."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in cells)
    if filler:
        nb.cells.append(nbformat.v4.new_markdown_cell("x" * filler))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def executed(run_dir: str) -> Any:
    return nbformat.read(str(Path(run_dir) / "output.ipynb"), as_version=4)


def provenance(run_dir: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(run_dir) / "provenance.json").read_text())
    return data


def plain_papermill(source: Path, out: Path) -> tuple[bool, str | None]:
    """Success, and the error name, of plain papermill on the same notebook."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(str(source), str(out), progress_bar=False)
    except PapermillExecutionError as exc:
        return False, exc.ename
    return True, None


PARAMS = "lr = 0.1\nepochs = 2\ncfg = {'a': 1}\nlayers = [8]\nflag: bool = False\ntitle = 'base'"
BODY = (
    "import json, os, workbench\n"
    "values = {'lr': lr, 'epochs': epochs, 'cfg': cfg, 'layers': layers, 'flag': flag, 'title': title}\n"
    "print(json.dumps(values))\n"
    "with open(os.path.join(os.environ['WORKBENCH_OUTPUT_DIR'], 'result.txt'), 'w') as fh:\n"
    "    fh.write(str(lr * epochs))\n"
    "workbench.log_metric('loss', 1.0)\n"
    "workbench.log_metric('loss', lr * epochs, step=2)\n"
)


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_parameters_injected_and_provenance(service: Service, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    source = write_notebook(repo / "train.ipynb", BODY, parameters=PARAMS)
    git(repo, "init", "-q")
    git(repo, "add", "train.ipynb")
    git(repo, "commit", "-q", "-m", "nb")
    (repo / "scratch.txt").write_text("uncommitted")
    given = {"lr": "0.5", "epochs": "3", "cfg": {"a": 2, "nested": [1, {"b": None}]}, "layers": "[16, 32]"}
    given |= {"flag": "true", "title": "a 'quoted' title"}
    workload = service.launch(
        {"kind": "notebook", "notebook": "train.ipynb", "parameters": given}, cwd=str(repo)
    )
    final = service.wait(workload.id, timeout=90)
    assert final.status == "succeeded", "".join(service.logs(final.id))
    typed = {"lr": 0.5, "epochs": 3, "cfg": {"a": 2, "nested": [1, {"b": None}]}, "layers": [16, 32]}
    typed |= {"flag": True, "title": "a 'quoted' title"}

    nb = executed(final.run_dir)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and nb.cells.index(injected[0]) == 1  # right after the parameters cell
    printed = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert json.loads(printed) == typed
    assert printed in "".join(service.logs(final.id))  # cell output streams into the log

    run_dir = Path(final.run_dir)
    manifest = provenance(final.run_dir)
    assert manifest["status"] == "succeeded" and manifest["error"] is None
    assert manifest["input"]["sha256"] == sha256(source) == sha256(run_dir / "input.ipynb")
    assert manifest["input"]["source"] == str(source)
    assert manifest["output"]["sha256"] == sha256(run_dir / "output.ipynb")
    assert manifest["parameters"] == typed
    assert manifest["kernel"] == "python3"
    assert manifest["image"] is None
    assert manifest["python"]["version"] == platform.python_version()
    assert manifest["packages"]["papermill"] and manifest["packages"]["nbformat"]
    assert manifest["git"]["commit"] == git(repo, "rev-parse", "HEAD")
    assert manifest["git"]["dirty"] is True
    assert manifest["started"] <= manifest["ended"]
    outputs = run_dir / "outputs"
    assert manifest["outputs"] == {
        "metrics.jsonl": sha256(outputs / "metrics.jsonl"),
        "result.txt": sha256(outputs / "result.txt"),
    }
    assert (outputs / "result.txt").read_text() == "1.5"
    assert manifest["metrics"] == {"loss": 1.5}
    assert manifest["cwd"] == str(repo)


def test_broken_cell_keeps_partial_output_and_names_the_cell(service: Service, tmp_path: Path) -> None:
    write_notebook(
        tmp_path / "broken.ipynb",
        "print('first ran')",
        "raise ValueError('bad data')",
        "print('never')",
        parameters="n = 1",
    )
    workload = service.launch({"kind": "notebook", "notebook": "broken.ipynb"}, cwd=str(tmp_path))
    final = service.wait(workload.id, timeout=90)
    assert final.status == "failed"
    # cells: parameters (0), injected parameters (1)... papermill injects even with no values
    manifest = provenance(final.run_dir)
    error = manifest["error"]
    assert (error["ename"], error["evalue"]) == ("ValueError", "bad data")
    assert final.message == f"exited with code 1: cell {error['cell_index']} failed: ValueError: bad data"
    assert manifest["status"] == "failed"
    nb = executed(final.run_dir)
    cells = [c for c in nb.cells if "papermill-error-cell" not in c.source]  # papermill's banners
    assert cells[error["cell_index"]].source == "raise ValueError('bad data')"
    assert [o["ename"] for o in cells[error["cell_index"]].outputs if o["output_type"] == "error"] == [
        "ValueError"
    ]
    texts = ["".join(o.get("text", "") for o in c.get("outputs", [])) for c in nb.cells]
    assert any("first ran" in t for t in texts)
    assert not any("never" in t for t in texts)
    assert manifest["output"]["sha256"] == sha256(Path(final.run_dir) / "output.ipynb")


def test_a_kernel_crash_keeps_what_ran_and_names_the_cell(service: Service, tmp_path: Path) -> None:
    write_notebook(
        tmp_path / "crash.ipynb", "print('first ran', flush=True)", "import os\nos._exit(1)", "print('never')"
    )
    final = service.wait(
        service.launch({"kind": "notebook", "notebook": "crash.ipynb"}, cwd=str(tmp_path)).id, timeout=90
    )
    manifest = provenance(final.run_dir)
    assert final.status == "failed" and manifest["status"] == "failed"
    assert manifest["error"]["ename"] == "DeadKernelError"
    nb = executed(final.run_dir)
    assert nb.cells[manifest["error"]["cell_index"]].source == "import os\nos._exit(1)"
    assert f"cell {manifest['error']['cell_index']} failed: DeadKernelError" in final.message
    assert "first ran" in json.dumps(nb.cells[manifest["error"]["cell_index"] - 1].outputs)
    assert "never" not in json.dumps([c.get("outputs", []) for c in nb.cells])


def test_exits_magics_and_no_parameters_cell_match_plain_papermill(service: Service, tmp_path: Path) -> None:
    cases = {
        "exit0": write_notebook(tmp_path / "exit0.ipynb", "import sys\nsys.exit(0)", "print('after')"),
        "exit1": write_notebook(tmp_path / "exit1.ipynb", "import sys\nsys.exit(1)", "print('after')"),
        "magic": write_notebook(tmp_path / "magic.ipynb", "%this_magic_does_not_exist\nx = 1"),
        "noparams": write_notebook(tmp_path / "noparams.ipynb", "print(answer * 2)"),
    }
    launched = {}
    for key, path in cases.items():
        parameters = {"answer": 21} if key == "noparams" else {}
        with (
            pytest.warns(UndeclaredParameterWarning, match="'answer' is not declared")
            if parameters
            else nullcontext()
        ):
            launched[key] = service.launch(
                {"kind": "notebook", "notebook": path.name, "parameters": parameters}, cwd=str(tmp_path)
            )
    plain = {}
    for key, path in cases.items():
        if key == "noparams":
            import papermill

            papermill.execute_notebook(str(path), str(tmp_path / "plain-noparams.ipynb"),
                                       parameters={"answer": 21}, progress_bar=False)  # fmt: skip
            plain[key] = (True, None)
        else:
            plain[key] = plain_papermill(path, tmp_path / f"plain-{key}.ipynb")
    for key, workload in launched.items():
        final = service.wait(workload.id, timeout=90)
        manifest = provenance(final.run_dir)
        ours = (final.status == "succeeded", (manifest["error"] or {}).get("ename"))
        assert ours == plain[key], (key, final.message)
        assert manifest["status"] == final.status
    noparams = executed(service.get(launched["noparams"].id).run_dir)
    assert "injected-parameters" in noparams.cells[0].metadata["tags"]  # at the top, as papermill does
    plain_nb = nbformat.read(str(tmp_path / "plain-noparams.ipynb"), as_version=4)
    assert noparams.cells[0].source == plain_nb.cells[0].source
    assert "42" in "".join(o.get("text", "") for o in noparams.cells[1].outputs)


def test_bad_input_is_refused_before_anything_is_created(service: Service, tmp_path: Path) -> None:
    write_notebook(tmp_path / "p.ipynb", "pass", parameters="epochs = 2\nlr: float = 0.1\ncfg = {}")
    base = {"kind": "notebook", "notebook": "p.ipynb"}
    bad = [
        ({"epochs": "abc"}, r"parameter 'epochs' is declared int in the notebook; 'abc' is not a valid int"),
        ({"epochs": 1.5}, r"parameter 'epochs' is declared int"),
        ({"lr": "fast"}, r"parameter 'lr' is declared float in the notebook; 'fast' is not a valid float"),
        ({"cfg": "[1, 2]"}, r"parameter 'cfg' is declared dict"),
    ]
    for parameters, message in bad:
        with pytest.raises(SpecError, match=message):
            service.launch({**base, "parameters": parameters}, cwd=str(tmp_path))
    with pytest.raises(SpecError, match=r"parameter 'nope' is not declared .*it declares cfg, epochs, lr"):
        service.launch({**base, "parameters": {"nope": 1}, "strict": True}, cwd=str(tmp_path))
    with pytest.raises(SpecError, match=r"cannot read notebook 'missing\.ipynb'"):
        service.launch({**base, "notebook": "missing.ipynb"}, cwd=str(tmp_path))
    with pytest.raises(SpecError, match="schedules need the kubernetes backend"):
        service.launch({**base, "schedule": "0 * * * *"}, cwd=str(tmp_path))
    locations = [
        ("memory://runs", r"memory:// lives inside one process"),
        ("nosuch://bucket/runs", r"fsspec knows no nosuch:// filesystem"),
        ("s3://bucket/runs", r"--output .s3://bucket/runs.: Install s3fs"),
        ("file://", r"needs a protocol and a path"),
    ]
    for output, message in locations:
        with pytest.raises(SpecError, match=message):
            service.launch({**base, "output": output}, cwd=str(tmp_path))
    for schedule, message in [
        ("0 3 * *", r"schedule '0 3 \* \*' has 4 fields; write five fields"),
        ("0 0 L * *", r"'L' is not a cron field"),
        ("99 * * * *", r"has a value out of range"),
        ("*/5 * * * * *", r"has 6 fields"),
    ]:
        with pytest.raises(SpecError, match=message):
            service.launch({**base, "schedule": schedule}, cwd=str(tmp_path))
    assert_nothing_created(service)


@pytest.mark.parametrize("form", ["file-url", "relative-path"])
def test_output_location_holds_each_run_directory(service: Service, tmp_path: Path, form: str) -> None:
    from workbench.notebooks import run_directory, verify_run

    write_notebook(tmp_path / "p.ipynb", BODY, parameters=PARAMS)
    output = f"file://{tmp_path}/published" if form == "file-url" else "published"
    spec = {"kind": "notebook", "notebook": "p.ipynb", "parameters": {"lr": 0.5}, "output": output}
    first = service.wait(service.launch(spec, cwd=str(tmp_path)).id, timeout=90)
    second = service.wait(service.launch(spec, cwd=str(tmp_path)).id, timeout=90)
    assert (first.status, second.status) == ("succeeded", "succeeded"), (first.message, second.message)
    for run in (first, second):
        folder = tmp_path / "published" / run.id  # each run gets OUTPUT/NAME
        location = run_directory(run)
        assert location.rstrip("/").endswith(f"published/{run.id}")
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert names == [
            "input.ipynb",
            "logs/output.log",
            "output.ipynb",
            "outputs/metrics.jsonl",
            "outputs/result.txt",
            "provenance.json",
        ]
        manifest = json.loads((folder / "provenance.json").read_text())
        assert manifest["run_directory"] == location
        assert manifest["output"]["sha256"] == sha256(folder / "output.ipynb")
        assert (folder / "outputs" / "result.txt").read_text() == "1.0"
        assert '"lr": 0.5' in (folder / "logs" / "output.log").read_text()
        assert verify_run(location, service.settings.home) == []
    tampered = tmp_path / "published" / first.id / "outputs" / "result.txt"
    tampered.write_text("2.0")
    assert verify_run(run_directory(first), service.settings.home) == [
        "outputs/result.txt: sha256 differs from the manifest"
    ]
    assert verify_run(run_directory(second), service.settings.home) == []


def _pid_file_notebook(path: Path, pid_file: Path) -> Path:
    return write_notebook(
        path,
        # the pid file is written after the print: once it exists, the cell is past its output
        "import os, time\nprint('sleeping', flush=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)",
        "print('never')",
        parameters="tag = 'base'",
    )


def _interrupt_kernel_when_ready(pid_file: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the notebook's kernel never started its sleeping cell"
        time.sleep(0.05)
    os.kill(int(pid_file.read_text()), signal.SIGINT)


def test_keyboard_interrupt_matches_plain_papermill(service: Service, tmp_path: Path) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    plain_pid, ours_pid = tmp_path / "plain.pid", tmp_path / "ours.pid"
    plain_nb = _pid_file_notebook(tmp_path / "plain.ipynb", plain_pid)
    _pid_file_notebook(tmp_path / "ours.ipynb", ours_pid)
    workload = service.launch(
        {"kind": "notebook", "notebook": "ours.ipynb", "parameters": {"tag": "x"}}, cwd=str(tmp_path)
    )
    _interrupt_kernel_when_ready(ours_pid)
    final = service.wait(workload.id, timeout=90)
    threading.Thread(target=_interrupt_kernel_when_ready, args=(plain_pid,), daemon=True).start()
    with pytest.raises(PapermillExecutionError) as plain_error:
        papermill.execute_notebook(
            str(plain_nb), str(tmp_path / "plain-out.ipynb"), parameters={"tag": "x"}, progress_bar=False
        )
    manifest = provenance(final.run_dir)
    assert final.status == "failed" and manifest["status"] == "failed"
    assert (
        (manifest["error"]["ename"], manifest["error"]["cell_index"])
        == (
            plain_error.value.ename,
            plain_error.value.cell_index,
        )
        == ("KeyboardInterrupt", plain_error.value.cell_index)
    )
    assert f"cell {plain_error.value.cell_index} failed: KeyboardInterrupt" in final.message
    ours_nb, plain_out = (
        executed(final.run_dir),
        nbformat.read(str(tmp_path / "plain-out.ipynb"), as_version=4),
    )
    assert [c.source for c in ours_nb.cells if c.source != "" and "pid" not in c.source] == [
        c.source for c in plain_out.cells if c.source != "" and "pid" not in c.source
    ]  # same injected parameters and the same error cell at the top
    errors = [o["ename"] for c in ours_nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == ["KeyboardInterrupt"]
    assert "never" not in json.dumps(ours_nb.cells[-1].get("outputs", []))


def test_sigint_to_the_run_stops_it_like_ctrl_c_stops_papermill(service: Service, tmp_path: Path) -> None:
    pid_file = tmp_path / "kernel.pid"
    _pid_file_notebook(tmp_path / "nb.ipynb", pid_file)
    workload = service.launch({"kind": "notebook", "notebook": "nb.ipynb"}, cwd=str(tmp_path))
    deadline = time.monotonic() + 60
    while "sleeping" not in "".join(service.logs(workload.id)):  # the runner has the cell's output
        assert time.monotonic() < deadline, "the notebook never reached its sleeping cell"
        time.sleep(0.05)
    runner = service.get(workload.id).pid
    assert runner is not None
    os.kill(runner, signal.SIGINT)
    final = service.wait(workload.id, timeout=60)
    assert final.status == "failed"
    assert "interrupted (SIGINT)" in final.message
    manifest = provenance(final.run_dir)
    assert manifest["status"] == "failed" and manifest["error"]["ename"] == "KeyboardInterrupt"
    texts = json.dumps(executed(final.run_dir).cells[1].get("outputs", []))
    assert "sleeping" in texts  # what ran before the interrupt is kept
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid_file.read_text()}").exists():  # the kernel does not outlive the run
        assert time.monotonic() < deadline, "the kernel outlived the interrupted run"
        time.sleep(0.1)

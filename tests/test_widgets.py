"""Cell widgets: comm messages from a real kernel whose front end renders widgets, today's text
where none does (a kernel that Jupyter Server did not start, papermill, WORKBENCH_WIDGETS=0),
the kernel's store watcher, and a sweep's table."""

from __future__ import annotations

import json
import queue
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from workbench.service import Service
from workbench.store import Workload
from workbench.sweeps import sweep, tally
from workbench.widgets_html import status as status_html
from workbench.widgets_watch import KernelWatcher

from .kernel import Kernel

STATUS = re.compile(r'class="wb-status" data-status="(\w+)"')
RSS = re.compile(r'data-rss-bytes="(\d+)"')
CPU = re.compile(r'data-peak-cpu-percent="([\d.]+)"')


Messages = list[dict[str, Any]]


def iopub(kernel: Kernel, msg_id: str, enough: Callable[[Messages], bool]) -> Messages:
    """Every iopub message (comm updates come from the watcher thread, under any parent) until
    the cell ``msg_id`` is idle and ``enough`` says so (or 30 s after it went idle)."""
    messages: list[dict[str, Any]] = []
    idle_at = None
    while True:
        try:
            msg = kernel.kc.get_iopub_msg(timeout=1)
            messages.append(msg)
        except queue.Empty:
            pass
        if messages and messages[-1]["parent_header"].get("msg_id") == msg_id:
            last = messages[-1]
            if last["msg_type"] == "status" and last["content"]["execution_state"] == "idle":
                idle_at = idle_at or time.monotonic()
        if idle_at is not None and (enough(messages) or time.monotonic() - idle_at > 30):
            return messages


def widget_values(messages: list[dict[str, Any]]) -> list[str]:
    """The ``value`` of every widget model, as opened or updated, in order."""
    values = []
    for msg in messages:
        if msg["msg_type"] in ("comm_open", "comm_msg"):
            state = msg["content"].get("data", {}).get("state", {})
            if isinstance(state.get("value"), str):
                values.append(state["value"])
    return values


def statuses(messages: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for value in widget_values(messages):
        for word in STATUS.findall(value):
            if not seen or seen[-1] != word:
                seen.append(word)
    return seen


def stdout_of(messages: list[dict[str, Any]], msg_id: str) -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream"
        and m["content"]["name"] == "stdout"
        and m["parent_header"].get("msg_id") == msg_id
    )


CELL = (
    "%%pod --name busy\n"
    "import time\n"
    "block = b'x' * (96 * 2**20)\n"
    "start = time.time()\n"
    "while time.time() - start < 2.5:\n"
    "    pass\n"
    "print('done', len(block) // 2**20)\n"
)


def test_pod_in_a_jupyter_server_kernel_shows_a_live_widget(tmp_path: Path) -> None:
    # JPY_SESSION_NAME in the start environment is how Jupyter Server starts a notebook's kernel:
    # jupyter_client then writes the session into the connection file, which the detection reads
    kernel = Kernel({"JPY_SESSION_NAME": str(tmp_path / "nb.ipynb"), "WORKBENCH_USAGE_PERIOD": "0.5"})
    try:
        assert kernel.run("%load_ext workbench").error is None
        msg_id = kernel.submit(CELL)
        messages = iopub(kernel, msg_id, lambda ms: "succeeded" in statuses(ms))
    finally:
        kernel.stop()
    opened = [m["content"] for m in messages if m["msg_type"] == "comm_open"]
    assert {o["target_name"] for o in opened} == {"jupyter.widget"}
    models = {o["data"]["state"]["_model_name"] for o in opened}
    assert {"VBoxModel", "HTMLModel", "ButtonModel", "OutputModel"} <= models
    assert any(m["msg_type"] == "comm_msg" for m in messages)
    shown = statuses(messages)
    assert shown[0] == "pending" and shown[-1] == "succeeded" and "running" in shown, shown
    values = widget_values(messages)
    peak_rss = max((int(v) for value in values for v in RSS.findall(value)), default=0)
    peak_cpu = max((float(v) for value in values for v in CPU.findall(value)), default=0.0)
    assert peak_rss >= 96 * 2**20, values[-5:]
    assert peak_cpu > 20, values[-5:]
    assert stdout_of(messages, msg_id) == "done 96\n"  # the logs still stream below the widget
    display = [m for m in messages if m["msg_type"] == "display_data"]
    assert len(display) == 1
    assert display[0]["content"]["data"]["text/plain"] == "busy (pod on local)"


def test_text_when_forced_off_or_no_widget_front_end(tmp_path: Path) -> None:
    for env in ({"JPY_SESSION_NAME": str(tmp_path / "nb.ipynb"), "WORKBENCH_WIDGETS": "0"}, {}):
        kernel = Kernel(env)
        try:
            assert kernel.run("%load_ext workbench").error is None
            msg_id = kernel.submit("%%pod\nprint('hello')")
            messages = iopub(kernel, msg_id, lambda ms: True)
            check = kernel.run("import sys; print('ipywidgets' in sys.modules)")
        finally:
            kernel.stop()
        assert [m["msg_type"] for m in messages if m["msg_type"].startswith(("comm", "display"))] == []
        assert stdout_of(messages, msg_id) == "hello\n"
        assert check.stdout == "False\n", env  # nothing of the widgets was even imported


def test_papermill_run_is_todays_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill  # type: ignore[import-untyped]

    # as `!papermill` in a JupyterLab kernel: the Lab kernel's environment is inherited
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "lab.ipynb"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext workbench"),
        nbformat.v4.new_code_cell("%%pod\nprint('hello from a pod')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source, executed = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, str(source))
    papermill.execute_notebook(str(source), str(executed), cwd=str(tmp_path), progress_bar=False)
    result = json.loads(executed.read_text())
    outputs = [cell["outputs"] for cell in result["cells"] if cell["cell_type"] == "code"]
    assert outputs[1] == [{"name": "stdout", "output_type": "stream", "text": ["hello from a pod\n"]}]
    assert "widgets" not in result["metadata"]


def test_the_kernel_watcher_delivers_store_changes(service: Service) -> None:
    got: list[tuple[str, str | None, int]] = []

    class Target:
        wants_usage = True

        def watched(self) -> list[str]:
            return ["w1"]

        def deliver(self, name: str, workload: Workload | None, summary: Any, samples: list[Any]) -> None:
            got.append((name, workload.status if workload else None, len(samples)))

        def tick(self, now: float) -> bool:
            return True

    now = time.time()
    record = Workload(id="w1", kind="pod", backend="local", status="pending", spec={"kind": "pod"},
                      run_dir=str(service.settings.runs_dir / "w1"), created=now)  # fmt: skip
    service.store.insert(record)
    watcher = KernelWatcher(lambda: Service(service.settings), poll_interval=0.05, idle_exit=0.5)
    target = Target()
    watcher.add(target)
    deadline = time.monotonic() + 10
    while not got:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert got == [("w1", "pending", 0)]
    service.store.update("w1", status="running", started=time.time())
    sample = {"t": time.time(), "cpu_seconds": 1.0, "cpu_percent": 50.0, "rss_bytes": 10, "threads": 1}
    service.store.record_usage("w1", sample)
    service.store.finish("w1", "succeeded", exit_code=0, message="")
    while got[-1][1] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert sum(n for _, _, n in got) == 1  # the one sample, delivered once
    service.store.delete("w1")
    while got[-1][1] is not None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    watcher.discard(target)
    while watcher.running:  # nothing left to watch: the thread ends
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_status_fragment_has_clock_and_duration() -> None:
    base = {"kind": "pod", "backend": "local", "spec": {}, "run_dir": "/x", "created": 100.0}
    running = status_html(Workload(id="a", status="running", started=110.0, **base), 175.0)
    assert 'data-status="running"' in running and "for 1m 05s" in running
    failed = Workload(id="a", status="failed", started=110.0, ended=112.5, exit_code=3, message="bo", **base)
    text = status_html(failed, 500.0)
    assert "failed (exit code 3)" in text and "in 2.5s" in text and "bo" in text


def test_sweep_to_pandas_has_one_row_per_point(service: Service, tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import workbench\nworkbench.log_metric('y', x * 2)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "tiny.ipynb"))
    spec = {"kind": "notebook", "notebook": "tiny.ipynb", "name": "tiny"}
    runs = sweep(spec, {"x": [1, 2]}, parallel=2, cwd=str(tmp_path), service=service)
    table = runs.to_pandas()
    assert list(table.columns) == ["name", "x", "status", "duration", "y", "run_dir"]
    assert table["name"].tolist() == ["tiny-0", "tiny-1"]
    assert table["x"].tolist() == [1, 2] and table["y"].tolist() == [2, 4]
    assert table["status"].tolist() == ["succeeded", "succeeded"]
    assert (table["duration"] > 0).all()
    assert all(Path(d).is_dir() for d in table["run_dir"])
    assert runs.progress()["succeeded"] == 2 and runs.summary() == "sweep tiny: 2 of 2 done (2 succeeded)"
    assert "tiny-0" in runs.table() and [w.id for w in runs] == ["tiny-0", "tiny-1"]
    assert runs._repr_mimebundle_() == {"text/plain": runs.table()}  # no widget front end here
    from workbench.widgets import SweepView

    view = SweepView(runs)
    for record in runs:
        view.deliver(record.id, record, None, [])
    assert view.tick(time.time())
    assert view.bar.value == 2 and view.bar.bar_style == "success" and view.cancel_button.disabled
    assert "2 of 2 done (2 succeeded)" in view.line.value and 'data-succeeded="2"' in view.line.value


def test_tally_counts_points_not_launched_yet() -> None:
    counts = tally(5, ["running", "succeeded", "failed"], launched=3)
    assert counts == {"total": 5, "queued": 2, "skipped": 0, "pending": 0, "running": 1, "succeeded": 1,
                      "failed": 1, "cancelled": 0}  # fmt: skip
    assert tally(5, ["cancelled"], launched=1, finished=True)["skipped"] == 4


def test_workload_view_follows_its_record_and_its_buttons_act(service: Service) -> None:
    from workbench.widgets import WorkloadView

    workload = service.launch(
        {"kind": "pod", "code": "print('tick', flush=True)\nimport time\ntime.sleep(60)"}
    )
    view = WorkloadView(service, workload)
    assert 'data-status="pending"' in view.status.value and not view.cancel_button.disabled
    assert "waiting for the first resource sample" in view.usage.value
    deadline = time.monotonic() + 30
    while "tick" not in "".join(service.logs(workload.id)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    running = service.get(workload.id)
    summary = {"cpu_percent": 99.0, "peak_cpu_percent": 99.0, "rss_bytes": 300 * 2**20,
               "peak_rss_bytes": 300 * 2**20, "samples": 1}  # fmt: skip
    view.deliver(workload.id, running, summary, [{"t": 1.0, "cpu_percent": 99.0, "rss_bytes": 300 * 2**20}])
    assert 'data-rss-bytes="314572800"' in view.usage.value and "300Mi" in view.usage.value
    assert view.tick(running.started + 65) and "for 1m 05s" in view.status.value
    view._logs(None)
    assert [o["text"] for o in view.output.outputs] == ["tick\n"]
    view._cancel(None)
    final = service.wait(workload.id, timeout=30)
    assert final.status == "cancelled"
    view.deliver(workload.id, final, None, [])
    assert 'data-status="cancelled"' in view.status.value and view.cancel_button.disabled
    view.deliver(workload.id, None, None, [])
    assert 'data-status="deleted"' in view.status.value


def test_parts_of_a_dask_cluster_and_an_endpoint() -> None:
    from workbench.widgets_html import parts

    base = {"backend": "local", "status": "running", "run_dir": "/x", "created": 1.0}
    link = "http://127.0.0.1:8787/status"
    info = {"address": "tcp://127.0.0.1:1", "dashboard": link, "requested_workers": 3}
    text = parts(Workload(id="d", kind="dask", spec={"workers": 2}, info=info, **base))
    assert 'data-workers="3"' in text and "3 workers" in text and f'href="{link}"' in text
    info = {"revision": 2, "canary": 3, "traffic": {"2": 80, "3": 20}, "ready": 1, "desired": 2, "rps": 2.5}
    text = parts(Workload(id="s", kind="serve", spec={}, info=info, **base))
    assert "revision 2 · canary 3 at 20% · " in text and 'data-ready="1" data-desired="2"' in text
    assert "MLflow" not in text  # untracked


def test_a_tracked_workload_links_its_mlflow_run() -> None:
    from workbench.widgets_html import parts

    base = {"backend": "local", "status": "running", "run_dir": "/x", "created": 1.0, "spec": {}}
    url = "http://mlflow.example.org/#/experiments/1/runs/abc"
    text = parts(Workload(id="p", kind="pod", info={"mlflow": {"run_id": "abc", "url": url}}, **base))
    assert text.endswith(
        f'<div class="wb-part"><a class="wb-mlflow" href="{url}" target="_blank" rel="noopener">'
        "MLflow run abc</a></div>"
    )
    hostile = {"mlflow": {"run_id": "<b>x</b>", "url": "javascript:alert(1)"}}  # no page: its id, escaped
    text = parts(Workload(id="q", kind="pod", info=hostile, **base))
    assert "href" not in text and "MLflow run &lt;b&gt;x&lt;/b&gt;" in text


def test_widgets_wanted_follows_the_setting_and_else_the_front_end(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench import widgets_mode

    for value, expected in (("1", True), ("on", True), ("0", False), ("off", False), ("", False)):
        monkeypatch.setenv(widgets_mode.ENV, value)
        assert widgets_mode.wanted() is expected, value  # "" : no IPython kernel in this process


LAUNCH = (
    "from workbench.service import Service\n"
    "Service().launch({'kind': 'pod', 'name': 'valued', 'code': 'print(1)'})"
)


def results_of(messages: Messages, msg_id: str) -> list[dict[str, Any]]:
    """The data of the cell's ``execute_result`` (its value, as IPython displays it)."""
    return [
        m["content"]["data"]
        for m in messages
        if m["msg_type"] == "execute_result" and m["parent_header"].get("msg_id") == msg_id
    ]


def test_a_workload_as_a_cells_value_shows_its_widget(service: Service) -> None:
    kernel = Kernel({"WORKBENCH_WIDGETS": "1"})
    try:
        assert kernel.run("%load_ext workbench").error is None
        msg_id = kernel.submit(LAUNCH)  # the Python API's record, as the cell's last value
        messages = iopub(kernel, msg_id, lambda ms: "succeeded" in statuses(ms))
        # a record of another store than the kernel's keeps its usual text
        other_id = kernel.submit("import dataclasses\ndataclasses.replace(_, run_dir='/elsewhere/runs/x')")
        other = iopub(kernel, other_id, lambda ms: True)
    finally:
        kernel.stop()
    [value] = results_of(messages, msg_id)
    view = value["application/vnd.jupyter.widget-view+json"]
    opened = {m["content"]["comm_id"]: m["content"] for m in messages if m["msg_type"] == "comm_open"}
    assert opened[view["model_id"]]["data"]["state"]["_model_name"] == "VBoxModel"
    assert value["text/plain"].startswith("Workload(id='valued', kind='pod', backend='local'")
    shown = statuses(messages)  # live: updated by the kernel's watcher after the cell returned
    assert shown[0] == "pending" and shown[-1] == "succeeded", shown
    [text] = results_of(other, other_id)
    assert list(text) == ["text/plain"] and "run_dir='/elsewhere/runs/x'" in text["text/plain"]
    assert not [m for m in other if m["msg_type"] == "comm_open"]


def test_a_workload_as_a_cells_value_without_widgets_is_its_usual_text(service: Service) -> None:
    kernel = Kernel({"WORKBENCH_WIDGETS": "0"})
    try:
        shown: list[dict[str, Any]] = []
        for code in (
            LAUNCH.replace("Service().launch", "w = Service().launch") + "\nw",
            "%load_ext workbench\nw",
        ):
            msg_id = kernel.submit(code)
            messages = iopub(kernel, msg_id, lambda ms: True)
            assert not [m for m in messages if m["msg_type"].startswith("comm")]
            shown.extend(results_of(messages, msg_id))
        check = kernel.run("import sys; print('ipywidgets' in sys.modules)")
    finally:
        kernel.stop()
    before, after = shown  # IPython's repr before the extension was loaded, and after
    assert after == before and list(after) == ["text/plain"]
    assert after["text/plain"].startswith("Workload(id='valued'")
    assert check.stdout == "False\n"

"""`workbench notebook run|rerun`, `workbench verify`, sweeps and `%batch`, end to end."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.service import Service

from .backends.local.test_notebook import sha256, write_notebook
from .kernel import Kernel

BODY = (
    "import os, workbench\n"
    "with open(os.path.join(os.environ['WORKBENCH_OUTPUT_DIR'], 'result.txt'), 'w') as fh:\n"
    "    fh.write(f'{lr} {epochs} {tag}')\n"
    "workbench.log_metric('score', lr * epochs)\n"
    "print('done', lr, epochs, tag)\n"
)


@pytest.fixture
def notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_notebook(tmp_path / "nb.ipynb", BODY, parameters="lr = 0.1\nepochs = 1\ntag = 'x'")


def test_run_sign_verify_tamper_and_rerun(
    service: Service, notebook: Path, wb_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("params.yaml").write_text("epochs: 4\ntag: from-file\n")
    assert main(["notebook", "run", "nb.ipynb", "-p", "lr", "0.5", "-f", "params.yaml", "--sign"]) == 0
    out = capsys.readouterr()
    assert "done 0.5 4 from-file" in out.out
    (first,) = service.store.list()
    run_dir = Path(first.run_dir)
    assert (run_dir / "outputs" / "result.txt").read_text() == "0.5 4 from-file"
    keys = wb_home / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert [stat.S_IMODE(p.stat().st_mode) for p in keys.iterdir()] == [0o600]
    assert (run_dir / "provenance.sig.json").exists()

    assert main(["verify", first.id]) == 0
    assert capsys.readouterr().out.startswith(f"OK {run_dir}")

    result = run_dir / "outputs" / "result.txt"
    result.write_text("0.5 4 forged")
    assert main(["verify", str(run_dir)]) == 1
    assert capsys.readouterr().out == "MISMATCH outputs/result.txt: sha256 differs from the manifest\n"
    result.write_text("0.5 4 from-file")
    assert main(["verify", first.id]) == 0
    capsys.readouterr()

    manifest_path = run_dir / "provenance.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["parameters"]["lr"] = 0.05
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    assert main(["verify", first.id]) == 1
    assert "provenance.sig.json: the signature does not match provenance.json" in capsys.readouterr().out

    assert main(["notebook", "rerun", first.id]) == 0
    assert "done 0.5 4 from-file" in capsys.readouterr().out
    second = next(w for w in service.store.list() if w.id != first.id)
    again = json.loads((Path(second.run_dir) / "provenance.json").read_text())
    assert again["parameters"] == {"lr": 0.5, "epochs": 4, "tag": "from-file"}
    assert again["input"]["sha256"] == sha256(notebook) == manifest["input"]["sha256"]
    assert again["outputs"]["result.txt"] == sha256(result)
    assert main(["verify", second.id]) == 0


def test_sweep_of_six_runs_three_at_a_time(
    service: Service, notebook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["notebook", "run", "nb.ipynb", "--sweep", "lr=0.1,0.2,0.3", "--sweep", "epochs=1,2"]
    assert main([*argv, "-p", "tag", "s", "--parallel", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    header = lines[0].split()
    assert sorted(header) == sorted(["NAME", "tag", "lr", "epochs", "STATUS", "score"])
    assert header.index("STATUS") < header.index("score")
    rows = [dict(zip(header, line.split(), strict=True)) for line in lines[1:]]
    assert len(rows) == 6 and {r["tag"] for r in rows} == {"s"}
    got = {(r["lr"], r["epochs"]): (r["STATUS"], float(r["score"])) for r in rows}
    for lr in ("0.1", "0.2", "0.3"):
        for epochs in ("1", "2"):
            assert got[(lr, epochs)] == ("succeeded", pytest.approx(float(lr) * int(epochs)))
    records = service.store.list()
    assert len(records) == 6
    for record in records:  # never more than three running at once
        started = record.started
        assert started is not None
        overlapping = [r for r in records if r.started and r.ended and r.started <= started < r.ended]
        assert len(overlapping) <= 3


def test_sweep_with_a_bad_value_creates_nothing(
    service: Service, notebook: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["notebook", "run", "nb.ipynb", "--sweep", "epochs=1,two"]) == 2
    assert "parameter 'epochs' is declared int in the notebook; 'two' is not a valid int" in (
        capsys.readouterr().err
    )
    assert service.store.list() == []
    assert main(["notebook", "run", "nb.ipynb", "--schedule", "@daily"]) == 2
    assert "schedules need the kubernetes backend" in capsys.readouterr().err


def test_batch_magic_streams_the_run(service: Service, notebook: Path) -> None:
    kernel = Kernel()
    try:
        assert kernel.run(f"%load_ext workbench\nimport os\nos.chdir({str(notebook.parent)!r})").error is None
        reply = kernel.run("%batch nb.ipynb -p lr 2 -p tag magic")
        assert reply.error is None, reply
        assert "done 2.0 1 magic" in reply.stdout
        assert "workbench: executed notebook " in reply.stdout
        bad = kernel.run("%batch nb.ipynb -p lr oops")
        assert "parameter 'lr' is declared float" in bad.error_text
    finally:
        kernel.stop()
    assert [w.status for w in service.store.list()] == ["succeeded"]


def test_batch_run_survives_a_kernel_restart(service: Service, notebook: Path, tmp_path: Path) -> None:
    write_notebook(
        tmp_path / "slow.ipynb",
        "import time\nprint('before', flush=True)\ntime.sleep(2)\nprint('after', tag)",
        parameters="tag = 'x'",
    )
    kernel = Kernel()
    try:
        assert kernel.run(f"%load_ext workbench\nimport os\nos.chdir({str(tmp_path)!r})").error is None
        reply = kernel.run(f"%batch slow.ipynb -p tag kept --name slow-nb --detach --output {tmp_path}/runs")
        assert reply.error is None, reply
        assert "slow-nb launched" in reply.stdout
        kernel.restart()
        assert kernel.run("%load_ext workbench").error is None
        assert "slow-nb" in kernel.run("%wb ls").stdout
        final = service.wait("slow-nb", timeout=90)
        assert final.status == "succeeded", final.message
        assert "after kept" in kernel.run("%wb logs slow-nb").stdout
    finally:
        kernel.stop()
    assert main(["verify", "slow-nb"]) == 0
    published = json.loads((tmp_path / "runs" / "slow-nb" / "provenance.json").read_text())
    assert published["parameters"] == {"tag": "kept"} and published["status"] == "succeeded"


def test_python_api_sweep_and_verify(service: Service, notebook: Path) -> None:
    done = service.sweep(
        {"kind": "notebook", "notebook": "nb.ipynb", "name": "api", "parameters": {"tag": "api"}},
        {"lr": [0.5, 2], "epochs": [3]},
        parallel=2,
        cwd=str(notebook.parent),
    )
    assert [(w.id, w.status, w.spec["parameters"]) for w in done] == [
        ("api-0", "succeeded", {"tag": "api", "lr": 0.5, "epochs": 3}),
        ("api-1", "succeeded", {"tag": "api", "lr": 2.0, "epochs": 3}),
    ]
    assert (Path(done[1].run_dir) / "outputs" / "result.txt").read_text() == "2.0 3 api"
    assert service.verify("api-0") == [] and service.verify(done[1].run_dir) == []
    (Path(done[0].run_dir) / "outputs" / "extra.txt").write_text("added later")
    assert service.verify("api-0") == ["outputs/extra.txt: not in the manifest"]

"""Faults of the store's file: corrupt, read-only, full, deleted. Each is one line that says
what happened and what to do, with the CLI's exit code 2; nothing is created by a launch that
fails; a deleted store comes back with its records rebuilt, and no run directory is overwritten.

The read-only and full cases put WORKBENCH_HOME on a small tmpfs (this needs root, as in CI).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.errors import Conflict, StoreError
from workbench.repair import UNKNOWN
from workbench.runtime import procs
from workbench.service import Service
from workbench.store import Workload

PAGE = 4096


def wb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr naming every word."""
    line = result.stderr
    assert result.returncode == 2, (result.returncode, result.stdout, line)
    assert "Traceback" not in line and line.count("\n") == 1, line
    assert result.stdout == "", result.stdout
    for word in words:
        assert word in line, (word, line)
    return line


def wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def no_supervisor_left(home: Path) -> bool:
    return not procs.with_argv_tail("workbench.runtime.supervisor", str(home / "workbench.db"))


def supervisors_gone(home: Path, *names: str) -> bool:
    db = str(home / "workbench.db")
    return not any(procs.with_argv_tail("workbench.runtime.supervisor", db, name) for name in names)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "ok.py").write_text("print('ok')\n")
    return folder


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` (created), unmounted (lazily, if busy) afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def finished(service: Service, name: str, code: str) -> Workload:
    workload = service.wait(service.launch({"kind": "pod", "name": name, "code": code}).id, timeout=90)
    assert workload.status == "succeeded", workload.message
    return workload


# -- corrupt ---------------------------------------------------------------------------------
def test_a_corrupt_header_is_one_line_and_repair_rebuilds_the_records(wb_home: Path) -> None:
    service = Service()
    done = finished(service, "before", "print('kept')")
    service.close()
    wait_for(lambda: supervisors_gone(wb_home, "before"))
    db = wb_home / "workbench.db"
    with db.open("r+b") as fh:
        fh.write(b"this is no database " * 5)

    for args in (["ls"], ["describe", "before"], ["logs", "before"], ["cancel", "before"]):
        assert_one_line(wb(*args), str(db), "is corrupt", "workbench doctor --repair")
    with pytest.raises(StoreError) as raised:
        Service().list()
    assert raised.value.reason == "corrupt"
    doctor = wb("doctor")
    assert doctor.returncode == 1 and "is corrupt" in doctor.stdout, doctor.stdout

    repaired = wb("doctor", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "moved the corrupt store aside to" in repaired.stdout
    assert "rebuilt 1 record(s) from their run directories: before" in repaired.stdout
    assert len(list(wb_home.glob("workbench.db.corrupt-*"))) == 1
    again = Service().get("before")
    assert (again.status, again.exit_code, again.run_dir) == ("succeeded", 0, done.run_dir)
    assert "".join(Service().logs("before")) == "kept\n"
    assert wb("doctor").returncode == 0


def test_a_corrupt_page_is_one_line(wb_home: Path) -> None:
    service = Service()
    for i in range(300):
        service.store.insert(
            Workload(
                id=f"pod-{i}", kind="pod", backend="local", status="succeeded",
                spec={"kind": "pod", "padding": "x" * 200}, run_dir=f"/nowhere/{i}", created=time.time(),
            )
        )  # fmt: skip
    service.close()
    db = wb_home / "workbench.db"
    sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    pages = db.stat().st_size // PAGE
    assert pages > 8
    with db.open("r+b") as fh:  # page 1 (the schema) stays whole; the table's pages do not
        fh.seek(2 * PAGE)
        fh.write(b"\xa5" * PAGE * (pages - 2))
    assert_one_line(wb("ls"), str(db), "is corrupt", "malformed", "workbench doctor --repair")
    assert "FAIL" in wb("doctor").stdout


def test_bugs_are_not_disguised_as_store_faults(wb_home: Path) -> None:
    store = Service().store
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        store.update("pod-a", no_such_column=1)


# -- read-only -------------------------------------------------------------------------------
def test_a_read_only_store_is_listed_and_refuses_changes(wb_home: Path, script: Path) -> None:
    with tmpfs(wb_home, "64m"):
        service = Service()
        finished(service, "done", "print('done')")
        service.close()
        wait_for(lambda: no_supervisor_left(wb_home))
        # processes closing at the same moment can each leave the journal to the other (a CI run
        # found workbench.db-wal unreplayed): a read-only store here is one closed cleanly
        db = sqlite3.connect(wb_home / "workbench.db")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        subprocess.run(["mount", "-o", "remount,ro", str(wb_home)], check=True)

        listed = wb("ls")
        assert listed.returncode == 0, listed.stderr
        assert "done" in listed.stdout and "succeeded" in listed.stdout
        assert "".join(Service().logs("done")) == "done\n"

        line = assert_one_line(wb("run", "ok.py", "--name", "later", cwd=script), "read-only")
        assert "WORKBENCH_HOME" in line or "writable" in line
        assert_one_line(wb("rm", "done"), str(wb_home / "workbench.db"), "is read-only")
        with pytest.raises(StoreError) as raised:
            Service().launch({"kind": "pod", "code": "pass"})
        assert raised.value.reason == "read-only"
        assert "(read-only)" in wb("doctor").stdout
        assert [w.id for w in Service().list()] == ["done"]


def test_a_store_that_cannot_be_created_is_one_line(wb_home: Path, script: Path) -> None:
    with tmpfs(wb_home, "1m"):
        subprocess.run(["mount", "-o", "remount,ro", str(wb_home)], check=True)
        assert_one_line(wb("ls"), str(wb_home / "workbench.db"), "read-only")
        assert_one_line(wb("run", "ok.py", cwd=script), "read-only")


# -- full ------------------------------------------------------------------------------------
def fill(folder: Path) -> Path:
    """Fill the disk holding ``folder``; the file that did it."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as fh:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * chunk)
    return filler


def test_a_full_disk_is_named_and_nothing_is_created(wb_home: Path, script: Path) -> None:
    with tmpfs(wb_home, "8m"):
        service = Service()
        store = service.store  # opened before the disk fills, as a running kernel's is
        filler = fill(wb_home)

        assert_one_line(wb("run", "ok.py", "--name", "nope", cwd=script), "the disk is full (ENOSPC)")
        listed = wb("ls")
        assert listed.returncode == 0 or "the disk is full (ENOSPC)" in listed.stderr, listed.stderr
        assert listed.stderr.count("\n") <= 1 and "Traceback" not in listed.stderr
        with pytest.raises(StoreError) as raised:
            service.launch({"kind": "pod", "name": "nope", "code": "print(1)"})
        assert raised.value.reason == "full" and "free space" in str(raised.value)
        record = Workload(
            id="direct", kind="pod", backend="local", status="pending", spec={"padding": "x" * 50_000},
            run_dir="/nowhere", created=time.time(),
        )  # fmt: skip
        with pytest.raises(StoreError, match=r"the disk is full \(ENOSPC\)"):
            store.insert(record)

        filler.unlink()
        assert store.list() == []  # nothing half-written
        runs = wb_home / "runs"
        assert not runs.exists() or sorted(p.name for p in runs.iterdir()) == []
        after = finished(service, "after", "print('room again')")
        assert "".join(service.logs(after.id)) == "room again\n"
        service.close()
        wait_for(lambda: no_supervisor_left(wb_home))


# -- deleted ---------------------------------------------------------------------------------
@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """A file a gated workload waits for; made at the end whatever happens, so none runs on."""
    path = tmp_path / "gate"
    yield path
    path.touch()


def gated(gate: Path) -> str:
    return (
        "import os, time\nprint('up', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.05)\nprint('released')\n"
    )


def test_a_deleted_store_is_rebuilt_and_running_workloads_stay_running(wb_home: Path, gate: Path) -> None:
    service = Service()
    finished(service, "finished", "print('first run')")
    running = service.launch({"kind": "pod", "name": "waiting", "code": gated(gate)})
    wait_for(lambda: "up" in "".join(service.logs(running.id)))
    assert service.get("waiting").status == "running"
    kernel = Service()  # a process that keeps the store open, as a kernel does
    assert len(kernel.list()) == 2
    service.close()

    (wb_home / "workbench.db").unlink()  # `rm workbench.db`
    listed = wb("ls")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.count("\n") == 1 and "rebuilt 2 record(s)" in listed.stderr, listed.stderr
    rows = {line.split()[0]: line.split()[3] for line in listed.stdout.splitlines()[1:]}
    assert rows == {"finished": "succeeded", "waiting": "running"}
    assert "rebuilt" not in wb("ls").stderr  # said once

    # the kernel's service follows the new file, and the workload's supervisor records its end there
    assert {w.id: w.status for w in kernel.list()} == {"finished": "succeeded", "waiting": "running"}
    gate.touch()
    final = kernel.wait("waiting", timeout=60)
    assert (final.status, final.exit_code) == ("succeeded", 0)
    assert "".join(kernel.logs("waiting")) == "up\nreleased\n"
    assert "".join(kernel.logs("finished")) == "first run\n"
    with pytest.raises(Conflict, match="already exists"):
        kernel.launch({"kind": "pod", "name": "finished", "code": "print('second run')"})
    assert "".join(kernel.logs("finished")) == "first run\n"
    kernel.close()


def test_an_outcome_written_while_the_store_is_gone_is_kept(wb_home: Path, gate: Path) -> None:
    service = Service()
    running = service.launch({"kind": "pod", "name": "waiting", "code": gated(gate)})
    wait_for(lambda: service.get(running.id).status == "running")
    service.close()
    (wb_home / "workbench.db").unlink()
    gate.touch()
    copy = Path(running.run_dir) / "record.json"
    wait_for(lambda: json.loads(copy.read_text())["status"] != "running")
    wait_for(lambda: supervisors_gone(wb_home, "waiting"))
    again = Service().get("waiting")
    assert (again.status, again.exit_code) == ("succeeded", 0)
    assert "rebuilt" in again.info


def test_a_run_directory_without_a_record_is_never_overwritten(service: Service, script: Path) -> None:
    first = finished(service, "again", "print('first')")
    log = Path(first.run_dir) / "logs" / "output.log"
    service.store.delete("again")  # the record is lost, its run directory is not

    with pytest.raises(Conflict) as raised:
        service.launch({"kind": "pod", "name": "again", "code": "print('second')"})
    assert first.run_dir in str(raised.value) and "workbench doctor --repair" in str(raised.value)
    assert_one_line(wb("run", "ok.py", "--name", "again", cwd=script), first.run_dir, "doctor --repair")
    assert log.read_text() == "first\n"
    assert service.store.list() == []
    assert sorted(p.name for p in service.settings.runs_dir.iterdir()) == ["again"]

    doctor = wb("doctor")
    assert "1 without a record (again)" in doctor.stdout, doctor.stdout
    repaired = wb("doctor", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "rebuilt 1 record(s) from their run directories: again" in repaired.stdout
    rebuilt = service.get("again")
    assert (rebuilt.status, rebuilt.exit_code, rebuilt.message) == ("succeeded", 0, "")
    assert "nothing to rebuild" in wb("doctor", "--repair").stdout


def test_a_run_directory_without_its_record_copy_has_an_unknown_outcome(service: Service) -> None:
    first = finished(service, "legacy", "print('old')")
    wait_for(lambda: supervisors_gone(service.settings.home, "legacy"))
    (Path(first.run_dir) / "record.json").unlink()  # as a run directory made before the copy existed
    service.store.delete("legacy")
    assert wb("doctor", "--repair").returncode == 0
    rebuilt = service.get("legacy")
    assert (rebuilt.status, rebuilt.exit_code, rebuilt.message) == ("failed", None, UNKNOWN)
    assert rebuilt.spec == first.spec and rebuilt.created > 0
    assert "".join(service.logs("legacy")) == "old\n"

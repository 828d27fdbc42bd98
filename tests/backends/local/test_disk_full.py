"""A workload that fills the disk holding its run directory gets a record that names ENOSPC.

The realistic layout: a fresh WORKBENCH_HOME (store and run directories together, as by
default) on a small tmpfs of its own, which the workload fills. Mounting needs root, which
these machines give; the mount is removed again after each test.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.config import load_settings
from workbench.runtime import procs
from workbench.service import Service
from workbench.store import ACTIVE

SIZE = "2m"
#: Fills the run directory's disk by writing an output file, or by printing to its log.
FILL = {
    "output": (
        "import os\n"
        "with open(os.path.join(os.environ['WORKBENCH_OUTPUT_DIR'], 'big.bin'), 'wb') as fh:\n"
        "    while True:\n"
        "        fh.write(b'x' * 65536)\n"
    ),
    "log": "import sys\nline = 'y' * 999 + '\\n'\nwhile True:\n    sys.stdout.write(line)\n",
}


@pytest.fixture
def full_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """A service whose WORKBENCH_HOME is a fresh 2 MB tmpfs."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=700", "tmpfs", str(mount)], check=True)
    home = mount / "home"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    service = Service(load_settings())
    try:
        yield service
    finally:
        try:
            for workload in service.store.list(status=ACTIVE):
                service.cancel(workload.id)
        finally:
            service.close()
            subprocess.run(["umount", "--lazy", str(mount)], check=True)


@pytest.mark.parametrize("how", sorted(FILL))
def test_a_workload_that_fills_its_disk_is_failed_naming_enospc(full_home: Service, how: str) -> None:
    service = full_home
    workload = service.launch({"kind": "pod", "code": FILL[how]})
    final = service.wait(workload.id, timeout=60)

    assert final.status == "failed"
    assert final.exit_code == 1
    assert final.message.startswith(f"the disk holding {final.run_dir} is full (ENOSPC): exited with code 1")
    assert "free space on it" in final.message  # and what to do
    # the supervisor survived the failing writes and ended, its guard after it, leaving room
    deadline = time.monotonic() + 10
    while procs.with_argv_tail("workbench.runtime.supervisor", str(service.store.path), final.id):
        assert time.monotonic() < deadline, "the supervisor or its guard is still running"
        time.sleep(0.01)
    run_dir = Path(final.run_dir)
    assert not (run_dir / ".reserve").exists()
    assert os.statvfs(run_dir).f_bfree > 0
    assert service.get(final.id).message == final.message  # read again: the record stays as written

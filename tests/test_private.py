"""Everything under WORKBENCH_HOME is private whatever the umask; exposed secrets are named."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.service import Service


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_home_runs_and_every_run_file_are_private_under_umask_000(wb_home: Path, open_umask: None) -> None:
    service = Service()
    code = (
        "import os, pathlib\n"
        "out = pathlib.Path(os.environ['WORKBENCH_OUTPUT_DIR'])\n"
        "(out / 'sub').mkdir()\n"
        "(out / 'sub' / 'result.txt').write_text('42')\n"
        "print('done')\n"
    )
    workload = service.launch({"kind": "pod", "code": code, "env": {"TOKEN": "s3cret"}})
    final = service.wait(workload.id, timeout=60)
    assert final.status == "succeeded", final.message
    run_dir = Path(final.run_dir)
    assert (run_dir / "launch.json").exists() and (run_dir / "outputs" / "sub" / "result.txt").exists()
    for folder in (wb_home, wb_home / "runs", run_dir):
        assert mode(folder) == 0o700, folder
    for path in [*run_dir.rglob("*"), *wb_home.glob("workbench.db*")]:
        expected = 0o700 if path.is_dir() else 0o600
        assert mode(path) == expected, (path, oct(mode(path)))
    service.close()


def test_a_secret_file_readable_by_others_is_warned_about(
    wb_home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = wb_home / "secrets" / "db" / "password"
    secret.parent.mkdir(parents=True)
    secret.write_text("hunter2")
    secret.chmod(0o644)
    service = Service()
    workload = service.launch({"kind": "pod", "code": "pass", "secrets": ["PW=db:password"]})
    service.wait(workload.id, timeout=60)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "readable by others" in line]
    expected = f"secret file {secret} is readable by others (mode 0644); run `chmod 600 {secret}`"
    assert lines == [f"workbench: warning: {expected}"]
    secret.chmod(0o600)
    service.launch({"kind": "pod", "code": "pass", "secrets": ["PW=db:password"]})
    assert "readable by others" not in capfd.readouterr().err
    service.close()

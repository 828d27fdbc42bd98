"""``--get`` results are sealed: nothing else a workload writes or prints is ever unpickled."""

from __future__ import annotations

import base64
import os
import pickle
from pathlib import Path

import pytest

from workbench.errors import PermissionDenied
from workbench.runtime import results as sealed
from workbench.service import Service

# Unpickling this would create the file named in it: the proof that code ran in the kernel.
EVIL = """
import os, pickle, base64
class Boom:
    def __reduce__(self):
        return (open, (os.environ['WORKBENCH_PWNED'], 'w'))
blob = pickle.dumps({'y': Boom()})
"""


@pytest.fixture
def pwned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "pwned"
    monkeypatch.setenv("WORKBENCH_PWNED", str(target))
    return target


def finished(service: Service, code: str, **fields: object):  # type: ignore[no-untyped-def]
    workload = service.launch({"kind": "pod", "code": code, **fields})
    return service.wait(workload.id, timeout=60)


def test_a_results_file_written_by_the_code_is_never_loaded_without_get(
    service: Service, pwned: Path
) -> None:
    code = EVIL + (
        "for name in ('results.pkl', 'results.sealed'):\n"
        "    with open(os.path.join(os.environ['WORKBENCH_RUN_DIR'], name), 'wb') as fh:\n"
        "        fh.write(blob)\n"
    )
    final = finished(service, code)
    assert final.status == "succeeded"
    assert service.results(final.id) == {}
    assert not pwned.exists()


def test_results_forged_by_the_code_are_refused_with_get(service: Service, pwned: Path) -> None:
    # the code overwrites the sealed file only after the runner wrote it: at exit
    code = EVIL + (
        "import atexit\n"
        "def forge():\n"
        "    for name in ('results.pkl', 'results.sealed'):\n"
        "        with open(os.path.join(os.environ['WORKBENCH_RUN_DIR'], name), 'wb') as fh:\n"
        "            fh.write(b'0' * 32 + blob if name.endswith('sealed') else blob)\n"
        "atexit.register(forge)\n"
        "y = 1\n"
    )
    final = finished(service, code, get="y")
    assert final.status == "succeeded"
    with pytest.raises(PermissionDenied, match="seal does not match"):
        service.results(final.id)
    assert not pwned.exists()


def test_the_code_never_sees_the_key(service: Service) -> None:
    code = "import os\nseen = os.environ.get('WORKBENCH_RESULTS_KEY')\nprint('key:', seen)\n"
    final = finished(service, code, get="seen")
    assert final.status == "succeeded"
    assert service.results(final.id) == {"seen": None}
    run_dir = Path(final.run_dir)
    key = service.store.results_key(final.id)
    assert key is not None
    for path in run_dir.rglob("*"):  # the key is in the store only, never in the run directory
        if path.is_file():
            assert key.hex().encode() not in path.read_bytes(), path
    assert "key: None" in "".join(service.logs(final.id))


def test_sealed_results_round_trip_and_the_seal_binds_the_launch(service: Service) -> None:
    one = finished(service, "y = 1", get="y")
    two = finished(service, "y = 2", get="y")
    assert service.results(one.id) == {"y": 1}
    assert service.results(two.id) == {"y": 2}
    # results of one launch copied over another's are refused: another key sealed them
    Path(two.run_dir, sealed.FILE).write_bytes(Path(one.run_dir, sealed.FILE).read_bytes())
    with pytest.raises(PermissionDenied):
        service.results(two.id)


def test_a_marked_line_is_found_only_with_its_key() -> None:
    key, other = os.urandom(32), os.urandom(32)
    blob = pickle.dumps({"y": 3})
    forged = sealed.MARKER + base64.b64encode(b"x" * 32 + blob).decode() + "\n"
    log = "out\n" + sealed.seal_line(blob, key) + forged
    assert sealed.find_in_log(log, key) == blob  # the forged line after it is passed over
    assert sealed.find_in_log(log, other) is None
    assert sealed.find_in_log(forged, key) is None
    assert sealed.find_in_log(sealed.MARKER + "not base64!\n", key) is None

"""`workbench verify` against tampered run directories (issue 11, hole 2).

One signed and one unsigned notebook run are made once, for real (papermill, a kernel, the
local backend, launched with the CLI); each test tampers with a fresh copy of a run
directory and runs `workbench verify` on it as a subprocess, with the home that made the runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from workbench.config import load_settings
from workbench.runtime import notebook as nbrun
from workbench.service import Service

from .backends.local.test_notebook import sha256, write_notebook
from .conftest import BIN

BODY = (
    "import os\n"
    "with open(os.path.join(os.environ['WORKBENCH_OUTPUT_DIR'], 'result.txt'), 'w') as fh:\n"
    "    fh.write(f'result {tag}')\n"
    "print('done', tag)\n"
)
NOT_MATCHING = "does not match its provenance manifest"


@dataclass(frozen=True)
class Runs:
    home: Path
    signed: Path
    unsigned: Path
    env: dict[str, str]


def _env(home: Path, config: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_HOME=str(home),
        WORKBENCH_CONFIG=str(config),
        WORKBENCH_KILL_GRACE="2",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """A signed and an unsigned run of the same notebook, made once for the module."""
    base = tmp_path_factory.mktemp("verify")
    home, project = base / "wbhome", base / "project"
    write_notebook(project / "nb.ipynb", BODY, parameters="tag = 'x'")
    env = _env(home, base / "absent-config.yaml")
    launches = {
        name: subprocess.Popen(
            [
                str(BIN / "workbench"),
                "notebook",
                "run",
                "nb.ipynb",
                "-p",
                "tag",
                name,
                "--name",
                name,
                *flags,
            ],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, flags in (("signed", ["--sign"]), ("unsigned", []))
    }
    for name, process in launches.items():
        out, _ = process.communicate(timeout=180)
        assert process.returncode == 0, f"{name}: {out}"
    return Runs(home=home, signed=home / "runs" / "signed", unsigned=home / "runs" / "unsigned", env=env)


def _verify(
    runs: Runs, run_dir: Path | str, *flags: str, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = runs.env if home is None else {**runs.env, "WORKBENCH_HOME": str(home)}
    return subprocess.run(
        [str(BIN / "workbench"), "verify", str(run_dir), *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(source, target)
    return target


def _manifest(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / nbrun.PROVENANCE).read_text())
    return data


def _write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    (run_dir / nbrun.PROVENANCE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=1) + "\n")


def _forge_output(run_dir: Path) -> None:
    """Change what the executed notebook shows."""
    text = (run_dir / nbrun.OUTPUT).read_text()
    assert "done signed" in text or "done unsigned" in text
    (run_dir / nbrun.OUTPUT).write_text(text.replace("done ", "forged "))


def _fix_hash(run_dir: Path) -> None:
    manifest = _manifest(run_dir)
    manifest["output"]["sha256"] = sha256(run_dir / nbrun.OUTPUT)
    _write_manifest(run_dir, manifest)


def _other_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def _raw_public(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    raw: bytes = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw


def _fingerprint(key: Any) -> str:
    """As ssh writes fingerprints: SHA256: and the unpadded base64 of the sha256 (here of the raw key)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(_raw_public(key)).digest()).decode().rstrip("=")


def _sign_with(run_dir: Path, key: Any) -> None:
    """What someone with a key of their own would write: a well-formed signature record."""
    record = {
        "algorithm": "ed25519",
        "key": _fingerprint(key),
        "public_key": _raw_public(key).hex(),
        "signature": base64.b64encode(key.sign((run_dir / nbrun.PROVENANCE).read_bytes())).decode(),
    }
    (run_dir / nbrun.SIGNATURE).write_text(json.dumps(record, indent=2) + "\n")


# -- the nine tamperings of a signed run ---------------------------------------------------
def edited_output(run_dir: Path) -> None:
    _forge_output(run_dir)


def edited_manifest(run_dir: Path) -> None:
    manifest = _manifest(run_dir)
    manifest["parameters"]["tag"] = "forged"
    _write_manifest(run_dir, manifest)


def deleted_signature(run_dir: Path) -> None:
    (run_dir / nbrun.SIGNATURE).unlink()


def deleted_signature_fixed_hash(run_dir: Path) -> None:
    _forge_output(run_dir)
    _fix_hash(run_dir)
    (run_dir / nbrun.SIGNATURE).unlink()


def resigned_other_key(run_dir: Path) -> None:
    """Forge the output, fix its hash, name another key in the manifest and sign with it."""
    key = _other_key()
    _forge_output(run_dir)
    manifest = _manifest(run_dir)
    manifest["output"]["sha256"] = sha256(run_dir / nbrun.OUTPUT)
    manifest["signing_key"] = _fingerprint(key)
    _write_manifest(run_dir, manifest)
    _sign_with(run_dir, key)


def extra_output(run_dir: Path) -> None:
    (run_dir / "outputs" / "extra.txt").write_text("added later")


def edited_input(run_dir: Path) -> None:
    _edit_json(run_dir / nbrun.INPUT, lambda nb: nb["cells"][0].update(source="tag = 'forged'"))


def garbage_signature(run_dir: Path) -> None:
    """The record's shape kept, its signature replaced by 64 random bytes."""
    _edit_json(
        run_dir / nbrun.SIGNATURE,
        lambda record: record.update(signature=base64.b64encode(os.urandom(64)).decode()),
    )


def null_hash(run_dir: Path) -> None:
    """Forge the output, record its hash as null, drop the signature that no longer matches."""
    _forge_output(run_dir)
    manifest = _manifest(run_dir)
    manifest["output"]["sha256"] = None
    _write_manifest(run_dir, manifest)
    (run_dir / nbrun.SIGNATURE).unlink()


SIGNED_BY = "missing, but provenance.json records the run as signed by SHA256:"
TAMPERINGS = [
    pytest.param(edited_output, ["output.ipynb: sha256 differs from the manifest"], id="edited-output"),
    pytest.param(
        edited_manifest,
        ["provenance.sig.json: the signature does not match provenance.json"],
        id="edited-manifest",
    ),
    pytest.param(deleted_signature, [SIGNED_BY], id="deleted-signature"),
    pytest.param(deleted_signature_fixed_hash, [SIGNED_BY], id="deleted-signature-fixed-hash"),
    pytest.param(resigned_other_key, ["signed by another key (SHA256:"], id="resigned-other-key"),
    pytest.param(extra_output, ["outputs/extra.txt: not in the manifest"], id="extra-output-file"),
    pytest.param(edited_input, ["input.ipynb: sha256 differs from the manifest"], id="edited-input"),
    pytest.param(
        garbage_signature,
        ["provenance.sig.json: the signature does not match provenance.json"],
        id="garbage-signature",
    ),
    pytest.param(
        null_hash, [SIGNED_BY, "output.ipynb: the manifest records no sha256 for it (None)"], id="null-hash"
    ),
]


@pytest.mark.parametrize(("tamper", "expected"), TAMPERINGS)
def test_every_tampering_of_a_signed_run_fails(
    runs: Runs, tmp_path: Path, tamper: Callable[[Path], None], expected: list[str]
) -> None:
    run_dir = _copy(runs.signed, tmp_path)
    tamper(run_dir)
    result = _verify(runs, run_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("MISMATCH ") for line in lines), lines
    for text in expected:
        assert any(text in line for line in lines), (text, lines)
    assert f"workbench: {run_dir} {NOT_MATCHING}" in result.stderr


def test_a_signed_run_as_made_verifies_and_names_the_key(runs: Runs, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    run_dir = _copy(runs.signed, tmp_path)
    (pem,) = (runs.home / "keys").iterdir()
    trusted = _fingerprint(load_pem_private_key(pem.read_bytes(), password=None))
    assert nbrun.trusted_fingerprint(runs.home) == trusted
    manifest = _manifest(run_dir)
    assert (manifest["signed"], manifest["signing_key"]) == (True, trusted)
    assert json.loads((run_dir / nbrun.SIGNATURE).read_text())["key"] == trusted
    for location in (str(run_dir), f"file://{run_dir}"):  # a path, or a URL read through fsspec
        for flags in ([], ["--require-signature"]):
            result = _verify(runs, location, *flags)
            assert result.returncode == 0, result.stdout + result.stderr
            assert result.stdout == (
                f"OK {location}: input, executed notebook and outputs match the manifest, "
                f"signed by this home's key {trusted}\n"
            )
    (run_dir / nbrun.SIGNATURE).unlink()
    deleted = _verify(runs, f"file://{run_dir}")
    assert deleted.returncode == 1 and SIGNED_BY in deleted.stdout


def test_an_unsigned_run_verifies_for_integrity_only(runs: Runs, tmp_path: Path) -> None:
    run_dir = _copy(runs.unsigned, tmp_path)
    manifest = _manifest(run_dir)
    assert (manifest["signed"], manifest["signing_key"]) == (False, None)
    result = _verify(runs, run_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == (
        f"OK {run_dir}: input, executed notebook and outputs match the manifest (unsigned: the hashes "
        "match, which proves integrity only, not who made the run; use --sign)\n"
    )
    required = _verify(runs, run_dir, "--require-signature")
    assert required.returncode == 1, required.stdout + required.stderr
    assert required.stdout == (
        "MISMATCH provenance.json: the run is not signed (--require-signature); launch it with --sign\n"
    )


def test_a_signature_is_trusted_only_by_the_home_that_made_it(
    runs: Runs, tmp_path: Path, wb_home: Path
) -> None:
    """Verified from a home without a key, or with a key of its own, a signed run fails."""
    run_dir = _copy(runs.signed, tmp_path)
    keyless = _verify(runs, run_dir, home=wb_home)
    assert keyless.returncode == 1
    assert "provenance.sig.json: this home has no signing key" in keyless.stdout
    nbrun.ensure_key(wb_home)
    other = _verify(runs, run_dir, home=wb_home)
    assert other.returncode == 1
    assert (
        f"signed by another key ({nbrun.trusted_fingerprint(runs.home)}), "
        f"not this home's key ({nbrun.trusted_fingerprint(wb_home)})"
    ) in other.stdout


@pytest.fixture
def service(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """The Python API on the home that made the runs (instead of the test's own home)."""
    monkeypatch.setenv("WORKBENCH_HOME", str(runs.home))
    svc = Service(load_settings())
    yield svc
    svc.close()


def _null(entry: str) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        if entry == "outputs":
            manifest["outputs"]["result.txt"] = None
        elif entry == "no-outputs":
            del manifest["outputs"]
        else:
            manifest[entry]["sha256"] = None

    return change


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("input", ["input.ipynb: the manifest records no sha256 for it (None)"]),
        ("output", ["output.ipynb: the manifest records no sha256 for it (None)"]),
        ("outputs", ["outputs/result.txt: the manifest records no sha256 for it (None)"]),
        (
            "no-outputs",
            [
                "outputs: the manifest records no hashes of the output files (None)",
                "outputs/result.txt: not in the manifest",
            ],
        ),
    ],
)
@pytest.mark.parametrize("kind", ["unsigned", "signed-by-this-home"])
def test_a_null_or_missing_hash_fails(
    service: Service, runs: Runs, tmp_path: Path, entry: str, expected: list[str], kind: str
) -> None:
    """Null hashes fail on their own: in an unsigned run, and in one re-signed with the
    trusted key (so that only the hash check can catch it)."""
    run_dir = _copy(runs.unsigned if kind == "unsigned" else runs.signed, tmp_path)
    manifest = _manifest(run_dir)
    _null(entry)(manifest)
    _write_manifest(run_dir, manifest)
    if kind != "unsigned":
        nbrun.sign_manifest(run_dir, runs.home)
    assert service.verify(str(run_dir)) == expected


def test_service_verify_require_signature(service: Service, runs: Runs, tmp_path: Path) -> None:
    unsigned, signed = _copy(runs.unsigned, tmp_path / "u"), _copy(runs.signed, tmp_path / "s")
    assert service.verify(str(unsigned)) == [] and service.verify(str(signed)) == []
    assert service.verify(str(unsigned), require_signature=True) == [
        "provenance.json: the run is not signed (--require-signature); launch it with --sign"
    ]
    assert service.verify(str(signed), require_signature=True) == []
    assert service.verify("signed", require_signature=True) == []  # by name, in the run directory


def test_a_signature_on_a_run_recorded_as_unsigned_fails(
    service: Service, runs: Runs, tmp_path: Path
) -> None:
    run_dir = _copy(runs.unsigned, tmp_path)
    nbrun.sign_manifest(run_dir, runs.home)
    assert service.verify(str(run_dir)) == [
        "provenance.sig.json: present, but provenance.json records the run as unsigned"
    ]


def test_a_manifest_naming_another_key_fails_even_when_signed_by_this_home(
    service: Service, runs: Runs, tmp_path: Path
) -> None:
    run_dir = _copy(runs.signed, tmp_path)
    manifest = _manifest(run_dir)
    manifest["signing_key"] = _fingerprint(_other_key())
    _write_manifest(run_dir, manifest)
    nbrun.sign_manifest(run_dir, runs.home)
    (problem,) = service.verify(str(run_dir))
    assert problem.startswith(f"provenance.json: records the signing key '{manifest['signing_key']}'")


def test_an_unreadable_signature_fails(service: Service, runs: Runs, tmp_path: Path) -> None:
    run_dir = _copy(runs.signed, tmp_path)
    (run_dir / nbrun.SIGNATURE).write_bytes(b"\x00 not json")
    (problem,) = service.verify(str(run_dir))
    assert problem.startswith("provenance.sig.json: unreadable")


def test_manifests_from_before_the_signed_field(service: Service, runs: Runs, tmp_path: Path) -> None:
    """Without ``signed``: a signature present decides (and is checked); none: an unsigned run."""
    for source in (runs.signed, runs.unsigned):
        run_dir = _copy(source, tmp_path / source.name)
        manifest = _manifest(run_dir)
        del manifest["signed"], manifest["signing_key"]
        _write_manifest(run_dir, manifest)
        if source == runs.signed:
            (problem,) = service.verify(str(run_dir))  # the signature covered the two fields
            assert problem.startswith("provenance.sig.json: the signature does not match provenance.json")
            nbrun.sign_manifest(run_dir, runs.home)
            assert service.verify(str(run_dir), require_signature=True) == []
        else:
            assert service.verify(str(run_dir)) == []
            assert service.verify(str(run_dir), require_signature=True) != []

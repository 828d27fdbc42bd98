"""Files named in a spec sent over HTTP must lie under the server's root directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_nothing_created
from workbench.server.paths import confine, confine_spec
from workbench.service import Service

from .conftest import Api, wait_until


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the root, holding a notebook and a script."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.ipynb").write_text("{}")
    (folder / "secret.py").write_text("print('should never run')\n")
    return folder


def escapes(root: Path, outside: Path, suffix: str) -> list[str]:
    link = root / f"link{suffix}"
    link.symlink_to(outside / f"secret{suffix}")
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "dirlink").symlink_to(outside, target_is_directory=True)
    return [
        f"../outside/secret{suffix}",
        f"sub/../../outside/secret{suffix}",
        str(outside / f"secret{suffix}"),
        link.name,
        f"sub/dirlink/secret{suffix}",
    ]


async def test_a_notebook_outside_the_root_is_refused(
    api: Api, service: Service, jp_root_dir: Path, outside: Path
) -> None:
    for path in escapes(jp_root_dir, outside, ".ipynb"):
        reply = await api("POST", "workloads", body={"kind": "notebook", "notebook": path})
        assert reply.code == 403, (path, reply.body)
        assert reply.json["error"] == "PermissionDenied"
        assert "outside the server's root directory" in reply.json["message"]
    assert_nothing_created(service)


async def test_a_script_outside_the_root_is_refused(
    api: Api, service: Service, jp_root_dir: Path, outside: Path
) -> None:
    for path in escapes(jp_root_dir, outside, ".py"):
        reply = await api("POST", "workloads", body={"kind": "pod", "script": path})
        assert reply.code == 403, (path, reply.body)
    assert_nothing_created(service)


async def test_a_notebook_inside_the_root_gets_a_clean_answer(
    api: Api, service: Service, jp_root_dir: Path
) -> None:
    (jp_root_dir / "nb").mkdir()
    (jp_root_dir / "nb" / "train.ipynb").write_text("{}")
    for path in ("nb/train.ipynb", str(jp_root_dir / "nb" / "train.ipynb")):
        reply = await api("POST", "workloads", body={"kind": "notebook", "notebook": path})
        # until notebook runs arrive: a 400 that says so, never a 403 or a 500
        assert reply.code in (201, 400), reply.body
        if reply.code == 201:
            assert reply.json["spec"]["notebook"] == "nb/train.ipynb"
            assert (
                await api("DELETE", "workloads", reply.json["name"], params={"force": "true"})
            ).code == 204
        else:
            assert reply.json["error"] == "SpecError" and "notebook" in reply.json["message"]
    assert_nothing_created(service)


async def test_a_script_inside_the_root_runs_there(api: Api, jp_root_dir: Path) -> None:
    (jp_root_dir / "jobs").mkdir()
    (jp_root_dir / "jobs" / "hello.py").write_text("import os, sys\nprint(sys.argv[1:], os.getcwd())\n")
    reply = await api("POST", "workloads", body={"kind": "pod", "script": "jobs/hello.py", "args": ["a"]})
    assert reply.code == 201, reply.body
    name = reply.json["name"]
    assert (await wait_until(api, name))["status"] == "succeeded"
    logs = (await api("GET", "workloads", name, "logs")).text
    assert logs == f"['a'] {jp_root_dir.resolve()}\n"


def test_confine_resolves_against_the_root(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "a").mkdir()
    assert confine("a/../a/x.ipynb", root, "notebook") == "a/x.ipynb"
    assert confine(str(root / "a" / "x.ipynb"), root, "notebook") == "a/x.ipynb"
    assert confine("~/x.ipynb", root, "notebook") == "~/x.ipynb"  # no home expansion: a name in the root
    with pytest.raises(Exception, match="invalid notebook path"):
        confine("a\0b.ipynb", root, "notebook")


async def test_a_run_directory_outside_the_root_is_refused(
    api: Api, service: Service, jp_root_dir: Path, outside: Path
) -> None:
    (jp_root_dir / "nb.ipynb").write_text("{}")
    for output in ("../outside/runs", str(outside), f"file://{outside}", "file:///", "sub/../../outside"):
        body = {"kind": "notebook", "notebook": "nb.ipynb", "output": output}
        reply = await api("POST", "workloads", body=body)
        assert reply.code == 403, (output, reply.body)
        assert "output" in reply.json["message"] and "outside the server's root" in reply.json["message"]
    assert_nothing_created(service)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.ipynb", "secret.py"]  # nothing written


def test_confine_spec_keeps_remote_and_pod_locations(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "runs").mkdir()
    assert confine_spec({"output": "runs"}, root)["output"] == "runs"
    assert confine_spec({"output": f"file://{root}/runs"}, root)["output"] == f"file://{root}/runs"
    assert confine_spec({"output": "s3://bucket/runs"}, root)["output"] == "s3://bucket/runs"
    pod_path = {"output": "/mnt/runs", "backend": "kubernetes"}
    assert confine_spec(pod_path, root)["output"] == "/mnt/runs"  # a path inside the pod

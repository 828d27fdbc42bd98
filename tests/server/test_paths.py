"""Files named in a spec sent over HTTP must lie under the server's root directory."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from jupyter_server.serverapp import ServerApp
from traitlets import TraitError

from tests.conftest import assert_nothing_created
from workbench.errors import PermissionDenied, SpecError
from workbench.server.app import WorkbenchApp
from workbench.server.paths import confine, confine_spec
from workbench.service import Service

from .conftest import Api, wait_until, workbench_app


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


def test_confine_spec_keeps_allowed_remote_and_pod_locations(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "runs").mkdir()
    assert confine_spec({"output": "runs"}, root)["output"] == "runs"
    assert confine_spec({"output": f"file://{root}/runs"}, root)["output"] == f"file://{root}/runs"
    assert confine_spec({"output": "s3://bucket/runs"}, root, {"s3"})["output"] == "s3://bucket/runs"
    assert confine_spec({"output": "S3://bucket/runs"}, root, {"s3"})["output"] == "s3://bucket/runs"
    with pytest.raises(PermissionDenied, match="allowed_output_schemes"):
        confine_spec({"output": "s3://bucket/runs"}, root)
    with pytest.raises(PermissionDenied, match="this server allows s3:// beyond paths"):
        confine_spec({"output": "gs://bucket/runs"}, root, {"s3"})
    pod_path = {"output": "/mnt/runs", "backend": "kubernetes"}
    assert confine_spec(pod_path, root)["output"] == "/mnt/runs"  # a path inside the pod
    with pytest.raises(SpecError, match="blanks"):
        confine_spec({**pod_path, "output": " /mnt/runs"}, root)


# -- escapes through odd forms (issue 11, hole 3) -------------------------------------------------
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook(path: Path) -> Path:
    """A real (tiny) python3 notebook, so that only the location decides the answer."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(nb, str(path))
    return path


def odd_outputs(outside: Path) -> list[str]:
    return [
        f"local://{outside}",  # fsspec's alias of file://, unconfined today
        f"LOCAL://{outside}",
        f"file:{outside}",  # a folder named 'file:' in the root today
        f" {outside}",  # a folder named ' ' in the root today
        f"{outside} ",
        f"runs\n{outside}",
        "runs\t",
        f"simplecache::file://{outside}",
        "c:\\runs",
        "file:runs",
    ]


async def test_odd_output_forms_are_refused(
    api: Api, service: Service, jp_root_dir: Path, outside: Path
) -> None:
    notebook(jp_root_dir / "params.ipynb")
    before = sorted(p.name for p in jp_root_dir.iterdir())
    for output in odd_outputs(outside):
        body = {"kind": "notebook", "notebook": "params.ipynb", "output": output}
        reply = await api("POST", "workloads", body=body)
        assert reply.code == 400, (output, reply.body)
        assert reply.json["error"] == "SpecError" and reply.json["message"].startswith("output "), reply.body
        assert "\n" not in reply.json["message"]
    assert_nothing_created(service)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.ipynb", "secret.py"]  # nothing written
    assert sorted(p.name for p in jp_root_dir.iterdir()) == before  # no 'file:' or ' ' folder either


async def test_odd_notebook_and_script_forms_are_refused(
    api: Api, service: Service, jp_root_dir: Path
) -> None:
    notebook(jp_root_dir / "params.ipynb")
    (jp_root_dir / "job.py").write_text("print(1)\n")
    for field, kind, name in (("notebook", "notebook", "params.ipynb"), ("script", "pod", "job.py")):
        for value in (
            f" {name}",
            f"{name} ",
            f"file:{name}",
            f"file://{jp_root_dir / name}",
            f"s3://b/{name}",
        ):
            reply = await api("POST", "workloads", body={"kind": kind, field: value})
            assert reply.code == 400, (value, reply.body)
            assert reply.json["message"].startswith(f"{field} "), reply.body
    assert_nothing_created(service)


async def test_remote_outputs_are_refused_by_default(api: Api, service: Service, jp_root_dir: Path) -> None:
    notebook(jp_root_dir / "params.ipynb")
    for output in ("s3://bucket/runs", "gs://bucket/runs", "https://example.com/runs", "sftp://host/runs"):
        body = {"kind": "notebook", "notebook": "params.ipynb", "output": output}
        reply = await api("POST", "workloads", body=body)
        assert reply.code == 403, (output, reply.body)
        assert reply.json["error"] == "PermissionDenied"
        assert "c.WorkbenchApp.allowed_output_schemes" in reply.json["hint"]
    assert_nothing_created(service)


@pytest.mark.parametrize("workbench_config", [{"allowed_output_schemes": ["S3"]}])
async def test_an_allowed_scheme_passes_the_server(api: Api, jp_root_dir: Path, wb_server: ServerApp) -> None:
    assert workbench_app(wb_server).allowed_output_schemes == ["s3"]
    notebook(jp_root_dir / "params.ipynb")
    body = {"kind": "notebook", "notebook": "params.ipynb", "output": "s3://bucket/runs"}
    reply = await api("POST", "workloads", body=body)
    # the server lets it through; what is left is whether this machine can write there (s3fs)
    assert reply.code in (201, 400), reply.body
    if reply.code == 201:
        assert reply.json["spec"]["output"] == "s3://bucket/runs"
        await api("DELETE", "workloads", reply.json["name"], params={"force": "true"})
    else:
        assert "s3fs" in reply.json["message"], reply.body
    gs = await api("POST", "workloads", body={**body, "output": "gs://bucket/runs"})
    assert gs.code == 403 and "this server allows s3:// beyond paths" in gs.json["message"]


def test_the_scheme_list_is_checked() -> None:
    app = WorkbenchApp()
    app.allowed_output_schemes = ["s3://", " GS "]
    assert app.allowed_output_schemes == ["s3", "gs"]
    for bad in ("local", "memory", "s3 bucket", "3s", ""):
        with pytest.raises(TraitError, match="allowed_output_schemes"):
            app.allowed_output_schemes = [bad]


async def test_paths_inside_the_root_still_hold_run_directories(api: Api, jp_root_dir: Path) -> None:
    notebook(jp_root_dir / "params.ipynb")
    for output in ("runs", f"file://{jp_root_dir}/runs2"):
        body = {"kind": "notebook", "notebook": "params.ipynb", "output": output}
        reply = await api("POST", "workloads", body=body)
        assert reply.code == 201, reply.body
        record = await wait_until(api, reply.json["name"])
        assert record["status"] == "succeeded", record
        folder = "runs" if output == "runs" else "runs2"
        assert (jp_root_dir / folder / reply.json["name"] / "output.ipynb").is_file()

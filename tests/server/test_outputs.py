"""A workload's run directory over HTTP: its files listed and served, confined; its spec to clone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from tornado.httpclient import AsyncHTTPClient

from workbench.server.outputs import MAX_FILES

from .conftest import Api, Reply, wait_until

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
BODY = (
    "import os\n"
    "out = os.environ['WORKBENCH_OUTPUT_DIR']\n"
    "os.makedirs(os.path.join(out, 'plots'), exist_ok=True)\n"
    "open(os.path.join(out, 'page.html'), 'w').write('<script>alert(1)</script>')\n"
    "open(os.path.join(out, 'plots', 'p.svg'), 'w').write('<svg onload=\"alert(1)\"/>')\n"
    "print('rate', rate)"
)


def write_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    cell = nbformat.v4.new_code_cell("rate = 0.5")
    cell.metadata["tags"] = ["parameters"]
    nb.cells.extend([cell, nbformat.v4.new_code_cell(BODY)])
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


async def raw_get(port: int, base: str, path: str, headers: dict[str, str]) -> Reply:
    """GET a URL path sent exactly as written (jp_fetch would normalise or escape it)."""
    url = f"http://localhost:{port}{base}workbench/api/{path}"
    response = await AsyncHTTPClient().fetch(url, headers=headers, raise_error=False)
    return Reply(response.code, response.headers, response.body or b"")


async def test_a_notebook_runs_files_are_listed_served_and_confined(
    api: Api,
    jp_root_dir: Path,
    tmp_path: Path,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    write_notebook(jp_root_dir / "nb" / "Train Model.ipynb")
    body = {"kind": "notebook", "notebook": "nb/Train Model.ipynb", "parameters": {"rate": 0.25}}
    created = await api("POST", "workloads", body=body)
    assert created.code == 201, created.body
    name = created.json["name"]
    final = await wait_until(api, name, timeout=120)
    assert final["status"] == "succeeded", final

    listing = await api("GET", "workloads", name, "files")
    assert listing.code == 200, listing.body
    data = listing.json
    run_dir = Path(data["run_dir"])
    assert run_dir == Path(final["run_dir"]).resolve()
    paths = [f["path"] for f in data["files"]]
    assert paths == sorted(paths)
    expected = ["input.ipynb", "output.ipynb", "provenance.json", "outputs/page.html", "outputs/plots/p.svg"]
    assert set(expected) <= set(paths), paths
    assert data["notebook"] == "output.ipynb"
    entry = next(f for f in data["files"] if f["path"] == "provenance.json")
    assert entry["size"] == (run_dir / "provenance.json").stat().st_size
    assert entry["modified"].endswith("+00:00") and "T" in entry["modified"]

    # the executed notebook: an attachment by default, JSON inline
    download = await api("GET", "workloads", name, "files", "output.ipynb")
    assert download.code == 200
    assert download.body == (run_dir / "output.ipynb").read_bytes()
    assert download.headers["Content-Disposition"] == "attachment; filename*=UTF-8''output.ipynb"
    assert "sandbox" in download.headers["Content-Security-Policy"]
    inline = await api("GET", "workloads", name, "files", "output.ipynb", params={"inline": "1"})
    assert inline.headers["Content-Type"] == "application/json"
    assert inline.headers["Content-Disposition"].startswith("inline")
    assert "rate 0.25" in json.dumps(inline.json)
    log = await api("GET", "workloads", name, "files", "logs/output.log", params={"inline": "1"})
    assert log.headers["Content-Type"] == "text/plain; charset=utf-8"

    # html and svg never go out as something a browser would run
    for rel in ("outputs/page.html", "outputs/plots/p.svg"):
        for params in ({}, {"inline": "1"}):
            reply = await api("GET", "workloads", name, "files", rel, params=params)
            assert reply.code == 200
            kind = reply.headers["Content-Type"]
            assert "html" not in kind and "svg" not in kind and "xml" not in kind, (rel, params, kind)
            assert reply.headers["X-Content-Type-Options"] == "nosniff"

    # confinement: '..', absolute paths, symlinks out, control characters
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    (run_dir / "outputs" / "link.txt").symlink_to(outside / "secret.txt")
    (run_dir / "outputs" / "dirlink").symlink_to(outside, target_is_directory=True)
    (run_dir / "outputs" / "inner.txt").symlink_to(run_dir / "provenance.json")
    paths = [f["path"] for f in (await api("GET", "workloads", name, "files")).json["files"]]
    assert "outputs/link.txt" not in paths and not any("dirlink" in p for p in paths)
    assert "outputs/inner.txt" in paths  # a symlink that stays inside is a file of the run

    base = f"workloads/{name}/files/"
    refused = {
        "..%2F..%2F..%2Foutside%2Fsecret.txt": 403,
        "outputs%2F..%2F..%2Fx": 403,
        "outputs%2F..%2Fprovenance.json": 403,  # '..' is refused even where it stays inside
        str(run_dir / "provenance.json").replace("/", "%2F"): 403,  # and so is an absolute path
        "%2Fetc%2Fpasswd": 403,
        f"{str(outside / 'secret.txt').replace('/', '%2F')}": 403,
        "outputs/link.txt": 403,
        "outputs/dirlink/secret.txt": 403,
        "output.ipynb%00.txt": 400,
        "logs%0Aoutput.log": 400,
    }
    for rel, code in refused.items():
        reply = await raw_get(jp_http_port, jp_base_url, base + rel, jp_auth_header)
        assert reply.code == code, (rel, reply.code, reply.body)
        assert b"top secret" not in reply.body
        assert reply.json["error"] in ("PermissionDenied", "SpecError"), reply.body
    assert (await api("GET", "workloads", name, "files", "nothing.txt")).code == 404
    assert (await api("GET", "workloads", name, "files", "outputs")).code == 404  # a folder
    inner = await api("GET", "workloads", name, "files", "outputs", "inner.txt")
    assert inner.code == 200 and inner.body == (run_dir / "provenance.json").read_bytes()

    # unauthenticated: nothing listed or served
    for path in (f"workloads/{name}/files", f"workloads/{name}/files/output.ipynb", f"workloads/{name}/spec"):
        reply = await raw_get(jp_http_port, jp_base_url, path, {})
        assert reply.code in (401, 403), (path, reply.code)
        assert b"cells" not in reply.body

    # the launchable spec: what was sent, without the name, ready for the form
    spec = await api("GET", "workloads", name, "spec")
    assert spec.code == 200
    assert spec.json["kind"] == "notebook"
    cloned = spec.json["spec"]
    assert cloned["kind"] == "notebook" and "name" not in cloned
    assert cloned["notebook"] == "nb/Train Model.ipynb"
    assert cloned["parameters"] == {"rate": 0.25}
    assert None not in cloned.values() and None not in cloned["resources"].values()
    relaunched = await api("POST", "workloads", body=cloned)  # the clone launches as it is
    assert relaunched.code == 201, relaunched.body
    assert relaunched.json["spec"]["notebook"] == "nb/Train Model.ipynb"


async def test_a_pod_lists_its_files_and_unknown_workloads_are_404(api: Api) -> None:
    code = (
        "import os\nout = os.environ['WORKBENCH_OUTPUT_DIR']\nos.makedirs(out, exist_ok=True)\n"
        f"for i in range({MAX_FILES + 5}):\n    open(os.path.join(out, f'f{{i:05d}}.txt'), 'w').write(str(i))"
    )
    created = await api("POST", "workloads", body={"kind": "pod", "code": code, "env": {"A": "1"}})
    assert created.code == 201, created.body
    name = created.json["name"]
    assert (await wait_until(api, name))["status"] == "succeeded"
    data = (await api("GET", "workloads", name, "files")).json
    assert data["notebook"] is None
    assert len(data["files"]) == MAX_FILES and data["truncated"] is True
    paths = [f["path"] for f in data["files"]]
    assert paths == sorted(paths)
    one = await api("GET", "workloads", name, "files", "outputs", "f00007.txt", params={"inline": "true"})
    assert (one.code, one.text, one.headers["Content-Type"]) == (200, "7", "text/plain; charset=utf-8")

    spec: dict[str, Any] = (await api("GET", "workloads", name, "spec")).json
    assert spec["kind"] == "pod" and spec["spec"]["code"] == code and spec["spec"]["env"] == {"A": "1"}
    assert "name" not in spec["spec"]

    for parts in (("files",), ("files", "x.txt"), ("spec",)):
        missing = await api("GET", "workloads", "no-such-workload", *parts)
        assert missing.code == 404 and missing.json["error"] == "NotFound", parts

"""Re-runs over HTTP, and a notebook's declared parameters for the batch dialog."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from tornado.httpclient import AsyncHTTPClient

from workbench.service import Service

from .conftest import Api, wait_until

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
PARAMS = 'rate: float = 0.5  # learning rate\nepochs = 2\ntitle = "base"\nlayers = [8, 4]\nextra = None'
BODY = "print('values', rate, epochs, title, flush=True)"


def write_notebook(path: Path, parameters: str | None = PARAMS, kernel: bool = True) -> Path:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC} if kernel else {})
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.append(nbformat.v4.new_code_cell(BODY))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def executed_values(run_dir: str) -> str:
    nb = json.loads((Path(run_dir) / "output.ipynb").read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))


async def test_rerun_a_notebook_with_other_parameters_and_a_pod_as_it_was(
    api: Api, service: Service, jp_root_dir: Path
) -> None:
    write_notebook(jp_root_dir / "train.ipynb")
    body = {"kind": "notebook", "notebook": "train.ipynb", "parameters": {"epochs": 3}, "output": "runs"}
    first = (await api("POST", "workloads", body=body)).json["name"]
    assert (await wait_until(api, first, timeout=120))["status"] == "succeeded"
    # the notebook changes afterwards: a re-run repeats the snapshot, not the file
    write_notebook(jp_root_dir / "train.ipynb", BODY.replace("values", "changed"))

    again = await api(
        "POST", "workloads", first, "rerun", body={"parameters": {"rate": "0.125"}, "name": "again"}
    )
    assert again.code == 201, again.body
    assert again.json["name"] == "again" and again.json["kind"] == "notebook"
    assert again.headers["Location"].endswith("/workbench/api/workloads/again")
    assert again.json["spec"]["parameters"] == {"epochs": 3, "rate": 0.125}  # merged, typed
    final = await wait_until(api, "again", timeout=120)
    assert final["status"] == "succeeded", final
    assert "values 0.125 3 base" in executed_values(final["run_dir"])
    assert (jp_root_dir / "runs" / "again" / "output.ipynb").exists()  # published where the first went

    plain = await api("POST", "workloads", first, "rerun")  # no body at all: as it was
    assert plain.code == 201, plain.body
    assert plain.json["spec"]["parameters"] == {"epochs": 3}
    assert plain.json["name"] != first

    before = {w.id for w in service.list()}
    bad = await api("POST", "workloads", first, "rerun", body={"parameters": {"epochs": "many"}})
    assert bad.code == 400 and bad.json["error"] == "SpecError"
    assert "epochs" in bad.json["message"] and "int" in bad.json["message"]
    for wrong in ({"parameters": [1]}, {"name": 3}, {"notebook": "x.ipynb"}):
        reply = await api("POST", "workloads", first, "rerun", body=wrong)
        assert reply.code == 400, (wrong, reply.body)
    taken = await api("POST", "workloads", first, "rerun", body={"name": "again"})
    assert taken.code == 409
    assert {w.id for w in service.list()} == before  # nothing created by the refusals

    pod = (await api("POST", "workloads", body={"kind": "pod", "code": "print('pod ran')"})).json["name"]
    assert (await wait_until(api, pod))["status"] == "succeeded"
    relaunched = await api("POST", "workloads", pod, "rerun", body={})
    assert relaunched.code == 201, relaunched.body
    assert relaunched.json["kind"] == "pod" and relaunched.json["name"] != pod
    assert (await wait_until(api, relaunched.json["name"]))["status"] == "succeeded"
    logs = await api("GET", "workloads", relaunched.json["name"], "logs")
    assert logs.text == "pod ran\n"
    with_params = await api("POST", "workloads", pod, "rerun", body={"parameters": {"a": 1}})
    assert with_params.code == 400 and "notebook runs" in with_params.json["message"]
    assert (await api("POST", "workloads", "no-such", "rerun", body={})).code == 404


async def test_rerun_of_a_kernel_launch_that_sent_variables_is_refused(api: Api, service: Service) -> None:
    sent = service.launch({"kind": "pod", "code": "print(x)", "send": ["x"]}, inputs={"x": 1})
    service.wait(sent.id, timeout=60)
    before = {w.id for w in service.list()}
    reply = await api("POST", "workloads", sent.id, "rerun", body={})
    assert reply.code == 400 and "kernel's variables x" in reply.json["message"]
    assert {w.id for w in service.list()} == before


async def test_rerun_keeps_the_run_directory_in_the_root(api: Api, service: Service, tmp_path: Path) -> None:
    # launched from the CLI elsewhere: its snapshot re-runs, but not into a folder outside the root
    folder = tmp_path / "elsewhere"
    write_notebook(folder / "nb.ipynb")
    fields = {"kind": "notebook", "notebook": "nb.ipynb", "output": "runs"}
    cli_run = service.launch(fields, cwd=str(folder))
    before = {w.id for w in service.list()}
    reply = await api("POST", "workloads", cli_run.id, "rerun", body={})
    assert reply.code == 403, reply.body
    assert reply.json["error"] == "PermissionDenied" and "output" in reply.json["message"]
    assert {w.id for w in service.list()} == before  # nothing launched


async def test_notebook_parameters_for_the_batch_dialog(
    api: Api, service: Service, jp_root_dir: Path, tmp_path: Path, jp_http_port: int, jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:  # fmt: skip
    write_notebook(jp_root_dir / "nb" / "Train Model v2.ipynb")
    reply = await api("GET", "notebook-parameters", params={"path": "nb/Train Model v2.ipynb"})
    assert reply.code == 200, reply.body
    data = reply.json
    assert data["path"] == "nb/Train Model v2.ipynb" and data["name"] == "train-model-v2"
    assert data["parameters"] == [
        {"name": "rate", "type": "float", "default": "0.5", "help": "learning rate"},
        {"name": "epochs", "type": "int", "default": "2", "help": ""},
        {"name": "title", "type": "str", "default": '"base"', "help": ""},
        {"name": "layers", "type": "list", "default": "[8, 4]", "help": ""},
        {"name": "extra", "type": "None", "default": "None", "help": ""},
    ]
    # the name is free: a workload already called so makes it train-model-v2-2
    service.launch({"kind": "pod", "code": "pass", "name": "train-model-v2"})
    named = await api(
        "GET", "notebook-parameters", params={"path": str(jp_root_dir / "nb" / "Train Model v2.ipynb")}
    )
    assert named.json["name"] == "train-model-v2-2" and named.json["path"] == "nb/Train Model v2.ipynb"

    write_notebook(jp_root_dir / "plain.ipynb", parameters=None, kernel=False)
    plain = await api("GET", "notebook-parameters", params={"path": "plain.ipynb"})
    assert plain.code == 200 and plain.json["parameters"] == [] and plain.json["name"] == "plain"

    outside = write_notebook(tmp_path / "outside" / "secret.ipynb")
    (jp_root_dir / "link.ipynb").symlink_to(outside)
    for path in ("../outside/secret.ipynb", str(outside), "link.ipynb"):
        refused = await api("GET", "notebook-parameters", params={"path": path})
        assert refused.code == 403, (path, refused.body)
        assert refused.json["error"] == "PermissionDenied" and "rate" not in refused.text
    (jp_root_dir / "notes.txt").write_text("{}")
    (jp_root_dir / "broken.ipynb").write_text("not json")
    for path, code in (
        ("missing.ipynb", 404),
        ("notes.txt", 400),
        ("broken.ipynb", 400),
        ("s3://b/x.ipynb", 400),
    ):
        answer = await api("GET", "notebook-parameters", params={"path": path})
        assert answer.code == code, (path, answer.body)
    assert (await api("GET", "notebook-parameters")).code == 400
    url = f"http://localhost:{jp_http_port}{jp_base_url}workbench/api/notebook-parameters?path="
    client = AsyncHTTPClient()
    nul = await client.fetch(url + "nb%00x.ipynb", headers=jp_auth_header, raise_error=False)
    assert nul.code == 400 and b"control character" in nul.body
    anonymous = await client.fetch(url + "nb%2FTrain%20Model%20v2.ipynb", raise_error=False)
    assert anonymous.code in (401, 403) and b"rate" not in (anonymous.body or b"")
    assert [w.id for w in service.store.list()] == ["train-model-v2"]  # nothing else was created


async def test_a_bad_spec_names_every_bad_field_in_form_words(api: Api, service: Service) -> None:
    body = {"kind": "pod", "code": "pass", "resources": {"memory": "lots", "cpu": "x"}, "timeout": "abc"}
    reply = await api("POST", "workloads", body=body)
    assert reply.code == 400
    error = reply.json
    assert error["message"].startswith("invalid --cpu (resources.cpu): 'x' is not a quantity")  # as before
    assert [f["field"] for f in error["fields"]] == ["resources.cpu", "resources.memory", "timeout"]
    memory = error["fields"][1]["message"]
    assert (
        memory
        == "'lots' is not a quantity; write a number with an optional unit such as 500m, 2, 512Mi, 4Gi or 1G"
    )
    gpu = await api(
        "POST", "workloads", body={"kind": "pod", "code": "pass", "resources": {"gpu_type": "A100"}}
    )
    (field,) = gpu.json["fields"]
    assert field["field"] == "resources" and "--" not in field["message"]
    assert field["message"] == "gpu type 'A100' needs gpus 1 or more"
    whole = await api("POST", "workloads", body={"kind": "pod"})
    assert whole.json["fields"] == [
        {"field": "", "message": "give exactly one of code (a cell body) or script (a .py path)"}
    ]
    other = await api("GET", "workloads", params={"kind": "nope"})  # not about a spec field
    assert other.code == 400 and other.json["fields"] == []
    assert service.store.list() == []

"""Contract tests of the `notebook` manifests: a payload ConfigMap and a Job, or a CronJob.

Every document is validated strictly for each supported Kubernetes version and passes our Pod
Security *restricted* and manifest checks; the rules of a notebook run on Kubernetes (an
--output the pod can write, no --sign, the input inline or uploaded) are checked here.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import nbformat
import pytest

from workbench.backends.base import Payload
from workbench.backends.kubernetes.build import SPEC_ANNOTATION, build_manifests
from workbench.backends.kubernetes.manifests import QUEUE_LABEL, KubeSettings
from workbench.backends.kubernetes.notebook_manifests import (
    build_notebook_manifests,
    notebook_location,
    uploads_input,
)
from workbench.backends.kubernetes.policy import check_manifest, check_restricted
from workbench.config import Settings
from workbench.errors import SpecError
from workbench.spec import NotebookSpec, parse_spec

from .test_manifests import BUNDLED, MINORS

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook_bytes(*cells: str, filler: int = 0) -> bytes:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    params = nbformat.v4.new_code_cell("lr = 0.1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    if filler:
        nb.cells.append(nbformat.v4.new_markdown_cell("x" * filler))
    return nbformat.writes(nb).encode()  # type: ignore[no-untyped-call]


NOTEBOOK = notebook_bytes("print(lr)")
CONFIG = {
    "source": "/projects/ada/train.ipynb",
    "source_dir": "/projects/ada",
    "parameters": {"lr": 0.5},
    "kernel": None,
}

CASES: dict[str, dict[str, Any]] = {
    "url": {"output": "file:///shared/runs"},
    "pvc": {"output": "/mnt/runs/team", "volumes": ["pvc/runs:/mnt/runs", "pvc/data:/data:ro"]},
    "gpus_queue": {
        "output": "file:///shared/runs",
        "queue": "team-a",
        "timeout": "2h",
        "resources": {"gpus": 1, "gpu_type": "NVIDIA-A100-SXM4-80GB", "cpu": "4", "memory": "16Gi"},
        "secrets": ["AWS_SECRET_ACCESS_KEY=s3-creds:secret"],
        "env": {"AWS_ACCESS_KEY_ID": "runner"},
        "labels": {"team": "ml"},
    },
    "schedule": {"output": "file:///shared/runs", "schedule": "0 3 * * *"},
    "schedule_queue": {
        "output": "/mnt/runs",
        "volumes": ["pvc/runs:/mnt/runs"],
        "schedule": "@daily",
        "queue": "team-a",
        "resources": {"gpus": 2},
    },
}


def spec_of(fields: dict[str, Any]) -> NotebookSpec:
    spec = parse_spec({"kind": "notebook", "notebook": "train.ipynb", **fields})
    assert isinstance(spec, NotebookSpec)
    return spec


def build(
    fields: dict[str, Any], *, workload_id: str = "nb-1", notebook: bytes = NOTEBOOK, **settings: Any
) -> list[dict[str, Any]]:
    return build_notebook_manifests(
        workload_id,
        spec_of(fields),
        notebook=notebook,
        config=CONFIG,
        owner="Ada Lovelace",
        settings=KubeSettings(**settings),
    )


def job_spec_of(main: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = main["spec"]["jobTemplate"]["spec"] if main["kind"] == "CronJob" else main["spec"]
    return spec


def container_of(main: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = job_spec_of(main)["template"]["spec"]["containers"][0]
    return container


def env_of(main: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container_of(main)["env"]}


@pytest.mark.parametrize("minor", MINORS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_manifests_validate_strictly_and_pass_policy(case: str, minor: int) -> None:
    docs = build(CASES[case], server_version=(1, minor))
    kind = "CronJob" if "schedule" in CASES[case] else "Job"
    assert [doc["kind"] for doc in docs] == ["ConfigMap", kind]
    for doc in docs:
        assert kubernetes_validate.validate(doc, BUNDLED[minor], strict=True) == f"1.{minor}"
        assert check_manifest(doc) == []
    assert check_restricted(job_spec_of(docs[1])["template"]["spec"]) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_input_same_dicts(case: str) -> None:
    first, second = build(CASES[case]), build(CASES[case])
    assert json.dumps(first) == json.dumps(second)


def test_configmap_holds_the_config_and_the_notebook() -> None:
    configmap, job = build(CASES["url"])
    assert configmap["metadata"]["name"] == "nb-1-payload" and configmap["immutable"] is True
    assert json.loads(configmap["data"]["notebook.json"]) == {
        **CONFIG,
        "output": "file:///shared/runs",
        "input": "payload",
    }
    assert configmap["data"]["input.ipynb"] == NOTEBOOK.decode()
    assert "binaryData" not in configmap and not uploads_input([configmap, job])
    labels = configmap["metadata"]["labels"]
    assert labels["workbench.jupyter.org/kind"] == "notebook" == labels["app.kubernetes.io/component"]
    assert labels == job["metadata"]["labels"] == job["spec"]["template"]["metadata"]["labels"]


def test_job_runs_the_notebook_runner_and_names_its_run_from_the_job_name_label() -> None:
    _, job = build(CASES["pvc"])
    container = container_of(job)
    assert container["command"] == ["python", "-m", "workbench.runtime.notebook", "/workbench/run"]
    env = env_of(job)
    assert env["WORKBENCH_JOB_NAME"] == {
        "name": "WORKBENCH_JOB_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
    }
    assert env["WORKBENCH_NOTEBOOK_OUTPUT"]["value"] == "/mnt/runs/team"
    assert env["WORKBENCH_WORKLOAD_ID"]["value"] == "nb-1"
    assert env["WORKBENCH_IMAGE"]["value"] == container["image"]
    assert [e["name"] for e in container["env"]] == sorted(env)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/mnt/runs"]["readOnly"] is False and mounts["/data"]["readOnly"] is True
    spec = job["spec"]
    assert (spec["completions"], spec["backoffLimit"], spec["ttlSecondsAfterFinished"]) == (1, 0, 86400)
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "Ignore"
    assert job["metadata"]["annotations"] == {"workbench.jupyter.org/owner": "Ada Lovelace"}


def test_gpus_queue_timeout_and_secrets_like_a_pod_job() -> None:
    _, job = build(CASES["gpus_queue"])
    assert job["metadata"]["labels"][QUEUE_LABEL] == "team-a" and job["spec"]["suspend"] is True
    assert job["spec"]["activeDeadlineSeconds"] == 7200
    pod = job["spec"]["template"]["spec"]
    assert container_of(job)["resources"]["limits"] == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    secret = env_of(job)["AWS_SECRET_ACCESS_KEY"]
    assert secret["valueFrom"] == {"secretKeyRef": {"name": "s3-creds", "key": "secret"}}


def test_schedule_is_a_cronjob_whose_template_is_the_one_off_job() -> None:
    configmap, cronjob = build(CASES["schedule"])
    _, job = build(CASES["url"])
    spec = cronjob["spec"]
    assert spec["schedule"] == "0 3 * * *" and spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 3)
    assert spec["jobTemplate"]["spec"] == job["spec"]
    assert (
        spec["jobTemplate"]["metadata"]["labels"]
        == cronjob["metadata"]["labels"]
        == job["metadata"]["labels"]
    )
    assert cronjob["metadata"]["name"] == "nb-1" and configmap["metadata"]["name"] == "nb-1-payload"
    queued = build(CASES["schedule_queue"])[1]
    template = queued["spec"]["jobTemplate"]
    assert template["metadata"]["labels"][QUEUE_LABEL] == "team-a" and template["spec"]["suspend"] is True
    assert QUEUE_LABEL not in queued["metadata"]["labels"]  # Kueue admits the Jobs, not the CronJob
    assert "timeZone" not in build(CASES["schedule"], server_version=(1, 26))[1]["spec"]


def test_locations() -> None:
    assert notebook_location(spec_of(CASES["url"]), "nb-1") == "file:///shared/runs/nb-1"
    assert notebook_location(spec_of(CASES["pvc"]), "nb-1") == "/mnt/runs/team/nb-1"
    assert notebook_location(spec_of(CASES["schedule"]), "nb-1") == "file:///shared/runs"


def test_a_notebook_too_large_for_a_configmap_is_read_from_the_output() -> None:
    large = notebook_bytes("print(lr)", filler=3000)
    configmap, job = build(CASES["url"], notebook=large, max_configmap_bytes=2048)
    assert set(configmap["data"]) == {"notebook.json"}
    assert json.loads(configmap["data"]["notebook.json"])["input"] == "output"
    assert uploads_input([configmap, job])
    # the limit counts the config and the notebook together
    fits = notebook_bytes("print(lr)")
    size = len(fits) + len(configmap["data"]["notebook.json"]) - len('"output"') + len('"payload"')
    assert not uploads_input(build(CASES["url"], notebook=fits, max_configmap_bytes=size))
    assert uploads_input(build(CASES["url"], notebook=fits, max_configmap_bytes=size - 1))


@pytest.mark.parametrize(
    ("fields", "settings", "words"),
    [
        pytest.param({}, {}, ["needs --output", "s3://bucket/runs", "--volume pvc/"], id="no-output"),
        pytest.param({"output": "runs"}, {}, ["'runs' is a relative path", "absolute"], id="relative"),
        pytest.param(
            {"output": "/mnt/runs"},
            {},
            ["'/mnt/runs' is not on a --volume pvc mount", "no --volume pvc"],
            id="no-volume",
        ),
        pytest.param(
            {"output": "/scratch/runs", "volumes": ["emptydir:/scratch", "pvc/runs:/mnt/runs"]},
            {},
            ["not on a --volume pvc mount (the pvc mounts are /mnt/runs)"],
            id="not-on-a-pvc",
        ),
        pytest.param(
            {"output": "/mnt/runs/../etc", "volumes": ["pvc/runs:/mnt/runs"]},
            {},
            ["not on a --volume pvc mount"],
            id="dotdot",
        ),
        pytest.param(
            {"output": "/mnt/runs", "volumes": ["pvc/runs:/mnt/runs:ro"]},
            {},
            ["read-only", "--volume pvc/runs:/mnt/runs"],
            id="read-only",
        ),
        pytest.param(
            {"output": "file:///r", "sign": True},
            {},
            ["--sign is not available on Kubernetes", "--backend local"],
            id="sign",
        ),
        pytest.param(
            {"output": "file:///r", "env": {"WORKBENCH_JOB_NAME": "x"}},
            {},
            ["WORKBENCH_JOB_NAME is set by workbench"],
            id="reserved-env",
        ),
        pytest.param(
            {"output": "/mnt/runs", "volumes": ["pvc/runs:/mnt/runs"]},
            {"max_configmap_bytes": 256},
            ["a ConfigMap holds at most 256 bytes", "path inside the pod", "fsspec URL"],
            id="too-large-for-a-path",
        ),
    ],
)
def test_bad_inputs_are_one_line_spec_errors(
    fields: dict[str, Any], settings: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(SpecError) as info:
        build(fields, **settings)
    text = info.value.one_line()
    assert "\n" not in text
    for word in words:
        assert word in text, text


def test_a_scheduled_runs_name_leaves_room_for_its_jobs() -> None:
    build(CASES["schedule"], workload_id="s" * 52)
    with pytest.raises(SpecError, match=r"is 53 characters.*at most 52"):
        build(CASES["schedule"], workload_id="s" * 53)
    build(CASES["url"], workload_id="s" * 63)


def test_build_manifests_records_the_spec_on_the_main_object() -> None:
    spec = spec_of({**CASES["schedule"], "parameters": {"lr": 0.5}})
    payload = Payload(extra={"notebook": NOTEBOOK, "config": CONFIG})
    docs = build_manifests("nb-1", spec, payload, Settings(owner="ada"), KubeSettings())
    assert json.loads(docs[-1]["metadata"]["annotations"][SPEC_ANNOTATION]) == spec.model_dump(mode="json")
    assert SPEC_ANNOTATION not in json.dumps(docs[-1]["spec"])  # the scheduled Jobs do not carry it
    with pytest.raises(SpecError, match=r"needs its notebook 'train\.ipynb' read first"):
        build_manifests("nb-1", spec, Payload(), Settings(owner="ada"), KubeSettings())

"""The objects of a ``notebook`` workload (a papermill run), as plain dicts.

Pure functions like :mod:`.manifests` (no I/O, no clock, no randomness, no ``kubernetes``
import), and the same pod template: Pod Security *restricted* and beyond, GPUs in limits, tolerations,
``/dev/shm``, secrets by reference, Kueue. A notebook run is two objects, in this order:

- ``<id>-payload``: an immutable ConfigMap with ``notebook.json`` (the runner's config: the
  parameters, the kernel, ``output`` and where the input comes from) and, when it fits,
  ``input.ipynb``. A notebook too large for a ConfigMap says ``"input": "output"``: the
  backend uploads it to ``<output>/<id>/input.ipynb`` first (only an fsspec URL can be
  written from here) and the runner reads it from there;
- ``<id>``: a batch/v1 Job of one pod running ``python -m workbench.runtime.notebook
  /workbench/run``, or with ``--schedule`` a batch/v1 CronJob whose jobTemplate is that
  same Job (``concurrencyPolicy: Forbid``: a run that is still going skips the next one).

The pod's disk goes away with it, so ``--output`` is required: an fsspec URL, or an absolute
path on a ``--volume pvc/...`` mount. Each run publishes its run directory to
``<output>/<name>``, where ``name`` is the Job's name, which the pod reads from its
``job-name`` label through the downward API (``<id>`` for a one-off run,
``<id>-<minutes since the epoch>`` for a scheduled one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...errors import SpecError
from ...runtime.notebook import INPUT, SIGN_ENV, run_location
from ...spec import NotebookSpec
from ...units import format_bytes
from .locations import OUTPUT_HINT, is_url, mounted_location
from .manifests import IGNORE_DISRUPTION, RUN_DIR, batch_job, job_lifecycle, pod_template, refuse_reserved_env
from .payload import payload_configmap
from .settings import OWNER_LABEL, KubeSettings, object_name, workload_labels

__all__ = [
    "CONFIG_KEY",
    "JOB_NAME_ENV",
    "OUTPUT_ENV",
    "build_notebook_manifests",
    "check_output",
    "notebook_config",
    "notebook_location",
    "payload_of",
    "uploads_input",
]

CONFIG_KEY = "notebook.json"
#: the Job's name (the run's name under --output), from the pod's ``job-name`` label
JOB_NAME_ENV = "WORKBENCH_JOB_NAME"
#: --output again, where the runner can read it (a path in it is the pod's view of a mount)
OUTPUT_ENV = "WORKBENCH_NOTEBOOK_OUTPUT"
IMAGE_ENV = "WORKBENCH_IMAGE"
_NOTEBOOK_ENV = (JOB_NAME_ENV, OUTPUT_ENV, IMAGE_ENV, SIGN_ENV)
RUNNER = ["python", "-m", "workbench.runtime.notebook", RUN_DIR]
#: finished Jobs a CronJob keeps, of each outcome (their pods keep the runs' logs)
HISTORY_LIMIT = 3
#: the CronJob controller adds 11 characters (``-<minutes>``) to name a run's Job
CRONJOB_NAME_LIMIT = 52


def check_output(spec: NotebookSpec) -> str:
    """The run-directory base of a notebook run on Kubernetes.

    Raises:
        SpecError: no ``--output`` (the pod's disk goes away), a relative path, or a path
            that is not on a read-write ``--volume pvc/...`` mount.
    """
    output = spec.output
    if output is None:
        raise SpecError(
            "a notebook run on Kubernetes needs --output: the pod's disk goes away with it",
            value=None,
            hint=OUTPUT_HINT,
        )
    return mounted_location(spec, output, "--output", OUTPUT_HINT)


def notebook_location(spec: NotebookSpec, workload_id: str) -> str:
    """Where the run directory is published: ``<output>/<id>``, or for a schedule ``<output>``
    (each run then gets ``<output>/<its Job's name>``)."""
    base = check_output(spec)
    return base if spec.schedule else run_location(base, workload_id)


def _check_env(spec: NotebookSpec) -> None:
    if spec.sign:
        raise SpecError(
            "--sign is not available on Kubernetes: the signing key stays on this machine "
            "and the pod that writes provenance.json cannot use it",
            value="--sign",
            hint="drop --sign, or run the notebook with --backend local to sign its provenance",
        )
    refuse_reserved_env(spec, _NOTEBOOK_ENV, "workbench for notebook runs")


def notebook_config(config: Mapping[str, Any], output: str, *, input_from: str) -> dict[str, Any]:
    """The runner's ``notebook.json``: the launch config, ``output`` and where the input is."""
    return {**config, "output": output, "input": input_from}


def _payload(
    workload_id: str,
    spec: NotebookSpec,
    notebook: bytes,
    config: Mapping[str, Any],
    output: str,
    labels: Mapping[str, str],
    settings: KubeSettings,
) -> dict[str, Any]:
    name = object_name(f"{workload_id}-payload", what="payload ConfigMap name", limit=253)
    inline = json.dumps(notebook_config(config, output, input_from="payload"), sort_keys=True)
    size = len(inline.encode("utf-8")) + len(notebook)
    limit = settings.max_configmap_bytes
    files: dict[str, str | bytes] = {CONFIG_KEY: inline, INPUT: notebook}
    if size > limit:
        if not is_url(output):
            raise SpecError(
                f"notebook {spec.notebook!r} is {len(notebook)} bytes ({format_bytes(len(notebook))}) "
                f"with its config {size}; a ConfigMap holds at most {limit} bytes, and --output "
                f"{output!r} is a path inside the pod, where it cannot be uploaded first",
                value=size,
                hint="give --output an fsspec URL (e.g. s3://bucket/runs) to upload it there, "
                "or clear the notebook's outputs to make it smaller",
            )
        uploaded = json.dumps(notebook_config(config, output, input_from="output"), sort_keys=True)
        files = {CONFIG_KEY: uploaded}
    return payload_configmap(name, labels, files=files, settings=settings)


def _env(container: dict[str, Any], output: str, image: str) -> list[dict[str, Any]]:
    entries = {entry["name"]: entry for entry in container["env"]}
    entries[JOB_NAME_ENV] = {
        "name": JOB_NAME_ENV,
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
    }
    entries[OUTPUT_ENV] = {"name": OUTPUT_ENV, "value": output}
    entries[IMAGE_ENV] = {"name": IMAGE_ENV, "value": image}
    return [entries[name] for name in sorted(entries)]


def _job_spec(spec: NotebookSpec, template: dict[str, Any], settings: KubeSettings) -> dict[str, Any]:
    # a failing cell fails the same way again, and a retry would publish over the failed run
    job_spec: dict[str, Any] = {"completions": 1, "parallelism": 1, "backoffLimit": 0}
    job_spec.update(job_lifecycle(spec, settings))
    if settings.supports(1, 26):
        # an evicted or preempted pod is recreated without using up the (zero) retries
        job_spec["podFailurePolicy"] = {"rules": [IGNORE_DISRUPTION]}
    job_spec["template"] = template
    return job_spec


def build_notebook_manifests(
    workload_id: str,
    spec: NotebookSpec,
    *,
    notebook: bytes,
    config: Mapping[str, Any],
    owner: str,
    settings: KubeSettings,
) -> list[dict[str, Any]]:
    """The objects of a ``notebook`` workload, in creation order: [payload ConfigMap, Job or CronJob].

    Args:
        workload_id: the workload's id; the Job's (or CronJob's) name.
        spec: the validated spec.
        notebook: the notebook's bytes (the input snapshot).
        config: the launch config from :func:`workbench.notebooks.notebook_payload`
            (source, parameters, kernel, ...).
        owner: who launched it (sanitized into a label value).
        settings: the cluster settings.

    Raises:
        SpecError: no usable ``--output``, ``--sign``, a name Kubernetes would refuse, or a
            notebook too large for a ConfigMap that cannot be uploaded to ``--output``.
    """
    output = check_output(spec)
    _check_env(spec)
    if spec.schedule:
        name = object_name(workload_id, what="workload id of a scheduled notebook", limit=CRONJOB_NAME_LIMIT)
    else:  # the Job controller copies the Job's name into a pod label, so it must fit 63
        name = object_name(workload_id, what="workload id", limit=63)
    labels = workload_labels(workload_id, "notebook", owner, spec.labels)
    configmap = _payload(workload_id, spec, notebook, config, output, labels, settings)
    template = pod_template(
        spec, workload_id, labels, configmap=configmap["metadata"]["name"], settings=settings
    )
    container = template["spec"]["containers"][0]
    container["command"] = list(RUNNER)
    container["env"] = _env(container, output, container["image"])
    job_spec = _job_spec(spec, template, settings)
    job = batch_job(name, labels, job_spec, spec, settings)
    main: dict[str, Any] = job
    if spec.schedule:
        cron_spec: dict[str, Any] = {"schedule": spec.schedule}
        if settings.supports(1, 27):
            cron_spec["timeZone"] = "Etc/UTC"  # not the controller manager's local time
        cron_spec.update(
            {
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": HISTORY_LIMIT,
                "failedJobsHistoryLimit": HISTORY_LIMIT,
                # the Jobs (and so their pods) carry the workload's labels: the watch finds them
                "jobTemplate": {"metadata": {"labels": job["metadata"]["labels"]}, "spec": job_spec},
            }
        )
        main = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": name, "namespace": settings.namespace, "labels": dict(labels)},
            "spec": cron_spec,
        }
    if owner:  # the label is lossy (lower-cased, trimmed); keep who it was
        main["metadata"]["annotations"] = {OWNER_LABEL: owner}
    return [configmap, main]


def uploads_input(docs: list[dict[str, Any]]) -> bool:
    """Whether the built objects expect the input notebook at ``<output>/<id>/input.ipynb``."""
    config = json.loads(payload_of(docs)["data"][CONFIG_KEY])
    return bool(config.get("input") == "output")


def payload_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The payload ConfigMap among a notebook workload's objects."""
    return next(doc for doc in docs if doc["kind"] == "ConfigMap")

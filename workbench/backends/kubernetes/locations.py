"""Where a workload's files outlive its pods on Kubernetes: ``--output`` and ``--checkpoint-dir``.

A pod's own disk (its emptyDirs, ``WORKBENCH_OUTPUT_DIR`` among them) goes away with the pod,
so a location that must outlive it is an fsspec URL the pods can write (``s3://…``) or an
absolute path on a read-write ``--volume pvc/...`` mount. Pure functions like the manifest
builders: they read the spec, refuse a location that cannot work in one line
(:class:`~workbench.errors.SpecError`), and add to a container what the runner in it needs:

- ``WORKBENCH_OUTPUT_LOCATION``: ``<output>/<workload id>``, where the runner
  (:mod:`workbench.runtime.cell`) publishes what the code wrote to ``WORKBENCH_OUTPUT_DIR``
  when it ends (rank 0 of a training job);
- ``WORKBENCH_CHECKPOINT_DIR``: where ``wt.save_checkpoint`` / ``wt.load_checkpoint`` write and
  read (``<dir>/checkpoint.pt``), shared by every node of a training job;
- ``WORKBENCH_TERMINATION_LOG``: the container's termination message file, where the runner
  writes a one-line reason of its own (a missing ``--get`` value): the kubelet copies it into
  ``state.terminated.message``, so the status says why even when torchrun turned the runner's
  exit code into its own.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ...errors import SpecError
from ...runtime import OUTPUT_LOCATION_ENV
from ...runtime.publish import run_location
from ...spec import CommonSpec, PodSpec, TrainSpec

__all__ = [
    "CHECKPOINT_ENV",
    "OUTPUT_HINT",
    "OUTPUT_LOCATION_ENV",
    "TERMINATION_ENV",
    "TERMINATION_LOG",
    "check_train_locations",
    "is_url",
    "mounted_location",
    "outputs_warning",
    "runner_outputs",
]

CHECKPOINT_ENV = "WORKBENCH_CHECKPOINT_DIR"
TERMINATION_ENV = "WORKBENCH_TERMINATION_LOG"
#: the kubelet's default terminationMessagePath: writable even with a read-only root filesystem
TERMINATION_LOG = "/dev/termination-log"
OUTPUT_HINT = (
    "give --output an fsspec URL such as s3://bucket/runs or file:///shared/runs, "
    "or a path on a PersistentVolumeClaim: --volume pvc/runs:/mnt/runs --output /mnt/runs"
)
CHECKPOINT_HINT = (
    "keep checkpoints on a PersistentVolumeClaim: --volume pvc/ckpt:/mnt/ckpt --checkpoint-dir "
    "/mnt/ckpt, or give an fsspec URL such as --checkpoint-dir s3://bucket/ckpt/NAME"
)


def is_url(location: str) -> bool:
    return "://" in location


def mounted_location(spec: CommonSpec, location: str, flag: str, hint: str) -> str:
    """``location`` when the pods can keep files there: an fsspec URL, or an absolute path on a
    read-write ``--volume pvc/...`` mount of ``spec`` (``flag`` names it in the refusal).

    Raises:
        SpecError: a relative path, a path on a read-only volume, or one on no pvc mount
            (naming the mounts there are).
    """
    if is_url(location):
        return location
    if not location.startswith("/"):
        raise SpecError(
            f"{flag} {location!r} is a relative path; in the pod it must be an absolute path "
            "on a --volume pvc mount",
            value=location,
            hint=hint,
        )
    path = posixpath.normpath(location)
    for volume in spec.volumes:
        mount = volume.mount_path.rstrip("/") or "/"
        if volume.type != "pvc" or not (path == mount or path.startswith(f"{mount.rstrip('/')}/")):
            continue
        if volume.read_only:
            raise SpecError(
                f"{flag} {location!r} is on a read-only volume: --volume "
                f"pvc/{volume.source}:{volume.mount_path}:ro",
                value=location,
                hint=f"mount it read-write: --volume pvc/{volume.source}:{volume.mount_path}",
            )
        return location
    mounts = [v.mount_path for v in spec.volumes if v.type == "pvc"]
    where = f"the pvc mounts are {', '.join(mounts)}" if mounts else "no --volume pvc is mounted"
    raise SpecError(
        f"{flag} {location!r} is not on a --volume pvc mount ({where}); the pod's own disk goes away with it",
        value=location,
        hint=hint,
    )


def check_train_locations(spec: TrainSpec) -> None:
    """Refuse a training job whose restarts could not resume, or whose locations cannot work.

    Raises:
        SpecError: ``--max-restarts`` on several nodes without ``--checkpoint-dir`` (a node
            whose pod is replaced starts on an empty disk, and the others cannot see node 0's
            outputs folder), or a bad ``--checkpoint-dir`` / ``--output``.
    """
    if spec.checkpoint_dir is not None:
        mounted_location(spec, spec.checkpoint_dir, "--checkpoint-dir", CHECKPOINT_HINT)
    elif spec.nodes > 1 and spec.max_restarts > 0:
        raise SpecError(
            f"--max-restarts {spec.max_restarts} on {spec.nodes} nodes needs --checkpoint-dir: "
            "each node's outputs folder is its pod's own disk, so a restarted job could not resume",
            value=spec.max_restarts,
            hint=CHECKPOINT_HINT,
        )
    if spec.output is not None:
        mounted_location(spec, spec.output, "--output", OUTPUT_HINT)


def runner_outputs(container: dict[str, Any], workload_id: str, spec: PodSpec | TrainSpec) -> None:
    """Give the cell runner's ``container`` its locations (see the module doc), env sorted.

    Raises:
        SpecError: a ``--output`` (or ``--checkpoint-dir``) the pods cannot keep files in.
    """
    values = {TERMINATION_ENV: TERMINATION_LOG}
    if spec.output is not None:
        values[OUTPUT_LOCATION_ENV] = run_location(
            mounted_location(spec, spec.output, "--output", OUTPUT_HINT), workload_id
        )
    if isinstance(spec, TrainSpec) and spec.checkpoint_dir is not None:
        values[CHECKPOINT_ENV] = spec.checkpoint_dir
    entries = {entry["name"]: entry for entry in container.get("env", [])}
    entries.update({name: {"name": name, "value": value} for name, value in values.items()})
    container["env"] = [entries[name] for name in sorted(entries)]
    # the default policy (File): a failed container's message is the runner's reason or nothing,
    # never a chunk of its log (the status reads the log's last line itself)
    container["terminationMessagePath"] = TERMINATION_LOG
    container["terminationMessagePolicy"] = "File"


def outputs_warning(spec: CommonSpec) -> str | None:
    """The one line a ``pod`` or ``train`` launch on Kubernetes prints when nothing is kept."""
    if not isinstance(spec, (PodSpec, TrainSpec)) or spec.output is not None:
        return None
    return (
        "workbench: warning: outputs are not kept: WORKBENCH_OUTPUT_DIR is the pod's own disk; "
        "give --output a path on a --volume pvc mount or an fsspec URL to publish them there"
    )

"""What this host can give local workloads: its NVIDIA GPUs, its cores and its memory.

A workload asking for N GPUs gets N free device indices through ``CUDA_VISIBLE_DEVICES``;
a GPU held by an active workload is never granted twice. The grant happens inside the
store's write transaction that creates the record, so two processes launching at once
cannot both take the same device. A request for more GPUs, cores or memory than the host
has at all is refused before launch (:func:`check_request`, :func:`check_capacity`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...errors import Conflict, SpecError
from ...spec import Resources
from ...units import format_bytes, parse_bytes, parse_cpu


def detect_gpus() -> list[str]:
    """Indices of this host's NVIDIA GPUs: nvidia-smi, else torch.cuda, else none."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=index", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            return [line.strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    if Path("/dev/nvidia0").exists():
        try:  # torch costs a second to import: only where a device node exists
            import torch

            return [str(i) for i in range(torch.cuda.device_count())]
        except ImportError:
            pass
    return []


def check_request(requested: int, host: Sequence[str]) -> None:
    """Refuse, before launch, a request that this host can never satisfy."""
    if requested > len(host):
        raise SpecError(
            f"asks for {requested} GPU{'s' if requested != 1 else ''} but this host has {len(host)}",
            value=requested,
            hint="lower --gpus, or use --backend kubernetes for bigger machines",
        )


def host_memory() -> int | None:
    """Bytes of memory this host has in all (None when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return None


def check_capacity(resources: Resources, what: str = "each process") -> None:
    """Refuse, before launch, more cores or memory (``--cpu``, ``--memory``, ``--shm``) than
    this host has in all: such a workload could never get what it asks for.

    Args:
        resources: the request of one process (a pod, a Dask worker, a training node).
        what: who asks, for the message.
    """
    cores = os.cpu_count() or 1
    if resources.cpu is not None and parse_cpu(resources.cpu) > cores:
        raise SpecError(
            f"--cpu {resources.cpu} asks for more cores than this host has ({cores}) for {what}",
            value=resources.cpu,
            hint=f"ask for at most {cores}, or use --backend kubernetes for more",
        )
    total = host_memory()
    for flag, amount in (("--memory", resources.memory), ("--shm", resources.shm)):
        if total and amount is not None and parse_bytes(amount) > total:
            raise SpecError(
                f"{flag} {amount} is more memory than this host has ({format_bytes(total)}B) for {what}",
                value=amount,
                hint=f"ask for at most {format_bytes(total)}, or use --backend kubernetes for more",
            )


def allocate(requested: int, host: Sequence[str], in_use: Mapping[str, str]) -> list[str]:
    """Pick ``requested`` free GPUs from ``host``, lowest index first.

    Args:
        requested: how many GPUs the workload asks for.
        host: the host's GPU indices.
        in_use: GPU index → the active workload holding it.

    Raises:
        SpecError: more GPUs than the host has.
        Conflict: enough exist, but too few are free now (names the holders).
    """
    check_request(requested, host)
    free = [gpu for gpu in host if gpu not in in_use]
    if requested > len(free):
        holders = ", ".join(sorted(set(in_use.values())))
        raise Conflict(
            f"asks for {requested} GPUs but only {len(free)} of {len(host)} are free (held by {holders})",
            value=requested,
            hint="wait for those to finish or cancel one with `workbench cancel NAME`",
        )
    return free[:requested]

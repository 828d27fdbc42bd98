"""NVIDIA GPUs of this host and their grant to local workloads.

A workload asking for N GPUs gets N free device indices through ``CUDA_VISIBLE_DEVICES``;
a GPU held by an active workload is never granted twice. The grant happens inside the
store's write transaction that creates the record, so two processes launching at once
cannot both take the same device.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...errors import Conflict, SpecError


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

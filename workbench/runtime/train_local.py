"""Distributed training on this machine: one torchrun per "node", meeting on loopback.

``python -m workbench.runtime.train_local RUN_DIR`` reads ``payload/train.json``. One node
runs ``torchrun --standalone``; N nodes run N torchrun processes that meet through c10d
rendezvous on 127.0.0.1 — the same contract as nodes on a cluster. Every rank runs the code
through ``workbench.runtime.cell`` (its output prefixed with its rank). When the job fails,
the rank that failed first is named in ``final_message`` and its traceback is printed last,
under a banner, so it is the first thing the user reads.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import FINAL_MESSAGE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def torchrun_argv(config: dict[str, Any], run_dir: Path, node: int, port: int, job_id: str) -> list[str]:
    argv = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={config['procs_per_node']}"]
    if config["max_restarts"]:
        argv.append(f"--max-restarts={config['max_restarts']}")
    if config["nodes"] == 1:
        argv.append("--standalone")
    else:
        argv += [
            f"--nnodes={config['nodes']}",
            f"--node-rank={node}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}",
            f"--rdzv-id={job_id}",
        ]
    return [*argv, "-m", "workbench.runtime.cell", str(run_dir)]


def first_failure(errors: Path) -> dict[str, Any] | None:
    records = []
    for path in errors.glob("rank-*.json"):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    if not records:
        return None
    last = max(r.get("attempt", 0) for r in records)  # an elastic job's final attempt is what failed
    chosen: dict[str, Any] = min((r for r in records if r.get("attempt", 0) == last), key=lambda r: r["time"])
    return chosen


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0])
    config: dict[str, Any] = json.loads((run_dir / "payload" / "train.json").read_text())
    job_id = os.environ.get("WORKBENCH_WORKLOAD_ID", run_dir.name)
    errors = run_dir / "errors"
    gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    per_node = int(config.get("gpus_per_node") or 0)
    port = free_port()
    procs = []
    for node in range(int(config["nodes"])):
        env = dict(os.environ)
        env["WORKBENCH_ERROR_DIR"] = str(errors)
        env.setdefault("OMP_NUM_THREADS", "1")
        # gloo connects its full mesh at the first collective, not in init_process_group: after an
        # elastic restart on a busy machine, an eager connect races the peers and fails or hangs
        env.setdefault("TORCH_GLOO_LAZY_INIT", "1")
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[node * per_node : (node + 1) * per_node])
        procs.append(subprocess.Popen(torchrun_argv(config, run_dir, node, port, job_id), env=env))

    def stop(signum: int, _frame: object) -> None:
        for proc in procs:
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    codes = [proc.wait() for proc in procs]
    if all(code == 0 for code in codes):
        return 0
    failure = first_failure(errors)
    if failure is not None:
        lines = [line for line in failure["traceback"].strip().splitlines() if line.strip()]
        reason = f"rank {failure['rank']} failed: {lines[-1] if lines else 'no message'}"
        banner = f"==== rank {failure['rank']} failed first; its traceback ===="
        sys.stdout.write(f"\n{banner}\n{failure['traceback'].rstrip()}\n")
        sys.stdout.flush()
    else:
        bad = next(code for code in codes if code != 0)
        reason = f"a node's torchrun exited with code {bad}"
    (run_dir / FINAL_MESSAGE).write_text(reason)
    return next(code for code in codes if code != 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

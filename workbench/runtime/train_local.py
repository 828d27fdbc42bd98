"""Distributed training on this machine: one torchrun per "node", meeting on loopback.

``python -m workbench.runtime.train_local RUN_DIR`` reads ``payload/train.json``. One node
runs torchrun's agent in this very process (torchrun's ``main``: one interpreter fewer than
a torchrun child, and no wait on it), with a static rendezvous, or ``--standalone`` when it
may restart; N nodes run N torchrun processes that meet through c10d rendezvous on
127.0.0.1 — the same contract as nodes on a cluster. Every rank runs the code through
``workbench.runtime.cell`` (its output prefixed with its rank). When the job fails, the
rank that failed first is named in ``final_message`` and its traceback is printed last,
under a banner, so it is the first thing the user reads.

Elastic restarts (``--max-restarts``): torchrun (torch 2.13) lets the workers share its
rendezvous TCPStore (``TORCHELASTIC_USE_AGENT_STORE``) and keeps that one store for every
restart, while ``init_process_group`` writes its gloo addresses under the same keys in every
attempt (torch assumes "a new TCPStore for every retry"). A restarted rank could read its
peer's address from the attempt before — a dead process — and fail with "Connect timeout" or
"Connection refused". ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` gives each attempt a store of
its own (hosted by rank 0's worker, on a port the agent picks anew each round).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from . import FINAL_MESSAGE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def torchrun_argv(config: dict[str, Any], run_dir: Path, node: int, port: int, job_id: str) -> list[str]:
    """torchrun's arguments for one node (what follows ``python -m torch.distributed.run``).

    ``port``: the c10d rendezvous endpoint's of N nodes; for one node without restarts, the
    port of its static rendezvous store.
    """
    argv = [f"--nproc-per-node={config['procs_per_node']}"]
    if config["max_restarts"]:
        argv.append(f"--max-restarts={config['max_restarts']}")
    if config["nodes"] > 1:
        argv += [
            f"--nnodes={config['nodes']}",
            f"--node-rank={node}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}",
            f"--rdzv-id={job_id}",
        ]
    elif config["max_restarts"]:
        argv.append("--standalone")  # c10d, whose every attempt gets a store of its own (see above)
    else:
        # Nothing to meet or restart: a static rendezvous (torchrun's classic one-node form)
        # skips c10d's random start delay of up to 0.3 s and its store round trips. (torchrun's
        # --monitor-interval stays 0.1 s: at 0.02 s its ticks cost ~3 % of a core all along.)
        argv += ["--nnodes=1", "--master-addr=127.0.0.1", f"--master-port={port}"]
    return [*argv, "-m", "workbench.runtime.cell", str(run_dir)]


def node_env(base: dict[str, str], errors: Path, gpus: list[str]) -> dict[str, str]:
    """The environment of one node's torchrun (its workers inherit it)."""
    env = dict(base)
    env["WORKBENCH_ERROR_DIR"] = str(errors)
    env.setdefault("OMP_NUM_THREADS", "1")
    # every elastic attempt gets a rendezvous store of its own: see the module's docstring
    env.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return env


def torchrun_here(config: dict[str, Any], run_dir: Path, job_id: str) -> int:
    """Run one node's torchrun agent in this process; its exit status as torchrun's would be."""
    from torch.distributed.run import main as torchrun

    port = free_port()  # only now, after the long import: the agent binds it at once
    try:
        torchrun(torchrun_argv(config, run_dir, 0, port, job_id))
    except SystemExit as exc:  # argparse's refusal
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # a failed rank (ChildFailedError), a signal: printed as torchrun does
        traceback.print_exc()
        return 1
    return 0


def torchrun_nodes(config: dict[str, Any], run_dir: Path, job_id: str, gpus: list[str]) -> list[int]:
    """Run the job's nodes; their torchruns' exit statuses."""
    nodes, per_node = int(config["nodes"]), int(config.get("gpus_per_node") or 0)
    errors = run_dir / "errors"
    if nodes == 1:
        os.environ.update(node_env(dict(os.environ), errors, gpus[:per_node]))
        return [torchrun_here(config, run_dir, job_id)]
    port = free_port()
    procs = []
    for node in range(nodes):
        env = node_env(dict(os.environ), errors, gpus[node * per_node : (node + 1) * per_node])
        argv = torchrun_argv(config, run_dir, node, port, job_id)
        procs.append(subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *argv], env=env))

    def stop(signum: int, _frame: object) -> None:
        for proc in procs:
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    return [proc.wait() for proc in procs]


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
    gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    codes = torchrun_nodes(config, run_dir, job_id, gpus)
    if all(code == 0 for code in codes):
        return 0
    failure = first_failure(run_dir / "errors")
    if failure is not None:
        lines = [line for line in failure["traceback"].strip().splitlines() if line.strip()]
        reason = f"rank {failure['rank']} failed: {lines[-1] if lines else 'no message'}"
        banner = f"==== rank {failure['rank']} failed first; its traceback ===="
        sys.stdout.write(f"\n{banner}\n{failure['traceback'].rstrip()}\n")
    else:
        bad = next(code for code in codes if code != 0)
        reason = f"a node's torchrun exited with code {bad}"
    (run_dir / FINAL_MESSAGE).write_text(reason)
    return next(code for code in codes if code != 0)


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # torch is loaded here (one node): its teardown at interpreter exit only costs time, and
    # gloo can abort in it; every worker has ended and every line is written by now
    os._exit(status & 0xFF)

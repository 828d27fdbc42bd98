"""A real IPython kernel driven through jupyter_client, for the magics' tests."""

from __future__ import annotations

import os
import queue
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class Reply:
    """What one execute request produced."""

    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] | None = None
    results: list[str] = field(default_factory=list)

    @property
    def error_text(self) -> str:
        return "\n".join(self.error["traceback"]) if self.error else ""


class Kernel:
    """Start, run cells in, interrupt and restart a python3 kernel."""

    def __init__(self, env: dict[str, str] | None = None, *, workbench_env: bool = True) -> None:
        """``env`` on top of this process's environment (without its WORKBENCH_* settings
        when ``workbench_env`` is False)."""
        base = {k: v for k, v in os.environ.items() if workbench_env or not k.startswith("WORKBENCH_")}
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env={**base, **(env or {})})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    @classmethod
    def isolated(cls, home: Path) -> Kernel:
        """A kernel on a WORKBENCH_HOME of its own, with none of this process's WORKBENCH_*
        settings and no config file (a module-scoped kernel that many tests share)."""
        env = {"WORKBENCH_HOME": str(home), "WORKBENCH_CONFIG": str(home.parent / "absent-config.yaml")}
        return cls(env, workbench_env=False)

    def submit(self, code: str) -> str:
        return str(self.kc.execute(code))

    def collect(self, msg_id: str, timeout: float = 120) -> Reply:
        reply = Reply()
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except queue.Empty as exc:
                raise AssertionError(f"no kernel output for {timeout}s; so far {reply}") from exc
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    reply.stdout += content["text"]
                else:
                    reply.stderr += content["text"]
            elif kind == "error":
                reply.error = content
            elif kind in ("execute_result", "display_data"):
                reply.results.append(content["data"].get("text/plain", ""))
            elif kind == "status" and content["execution_state"] == "idle":
                return reply

    def run(self, code: str, timeout: float = 120) -> Reply:
        return self.collect(self.submit(code), timeout)

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def restart(self) -> None:
        self.km.restart_kernel(now=True, newports=False)
        self.kc.wait_for_ready(timeout=60)

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

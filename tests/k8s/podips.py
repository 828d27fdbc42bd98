"""Pod IPs: loopback addresses of their own, distinct across every emulator on this machine.

Each pod gets an address in 127.0.0.0/8 (loopback: every one of them reaches this machine),
so two pods can both listen on their IP's port 8080. An emulator takes a block of 253
addresses, ``127.A.B.2`` to ``127.A.B.254``, and the next block when it has used them up;
blocks are numbered machine-wide through a small locked counter file in the temp directory,
so emulators in concurrent test processes never hand out the same address (the counter
wraps after 65,536 blocks). The first block of a fresh machine is 127.0.0.2 to 127.0.0.254.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

COUNTER = Path(tempfile.gettempdir()) / "k8s-emulator-pod-ip-blocks"
BLOCKS = 1 << 16


def reserve_block(counter: Path = COUNTER) -> int:
    """The next free block number, machine-wide (a random one where files cannot be locked)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not Linux
        return random.randrange(1, BLOCKS)
    fd = os.open(counter, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.read(fd, 32).decode(errors="replace").strip()
        block = (int(text) + 1) % BLOCKS if text.isdigit() else 0
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(block).encode())
        return block
    finally:
        os.close(fd)


class PodIPs:
    """Hands out the emulator's pod IPs, never the same one twice."""

    def __init__(self) -> None:
        self.block: int | None = None
        self.host = 255

    def take(self) -> str:
        if self.block is None or self.host > 254:
            self.block, self.host = reserve_block(), 2
        ip = f"127.{self.block >> 8}.{self.block & 255}.{self.host}"
        self.host += 1
        return ip

"""A rank that failed only because a peer went away waits before it exits (workbench.runtime.cell)."""

from __future__ import annotations

import pytest

from workbench.backends.kubernetes.train import LOST_PEER
from workbench.runtime import cell

GLOO = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
    "[127.0.0.1]:22429: Connection reset by peer"
)


@pytest.fixture
def naps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    taken: list[float] = []
    monkeypatch.setattr(cell.time, "sleep", taken.append)
    return taken


@pytest.mark.parametrize(
    ("world", "error", "waits"),
    [
        ("2", RuntimeError(GLOO), True),
        ("4", ConnectionResetError("Connection reset by peer"), True),
        ("2", BrokenPipeError("Broken pipe"), True),
        ("2", ValueError("bad batch on rank 1"), False),  # it failed on its own: it ends at once
        ("1", RuntimeError(GLOO), False),  # no peers to wait for
    ],
)
def test_only_a_rank_that_lost_a_peer_lingers(
    monkeypatch: pytest.MonkeyPatch, naps: list[float], world: str, error: BaseException, waits: bool
) -> None:
    monkeypatch.setenv("WORLD_SIZE", world)
    cell._linger_if_a_peer_went_first(error)
    assert naps == ([cell.LOST_PEER_LINGER] if waits else [])


def test_the_status_reads_a_lost_peer_as_the_runner_does() -> None:
    assert LOST_PEER.search(f"RuntimeError: {GLOO}")
    assert LOST_PEER.pattern == cell.LOST_PEER
    assert not LOST_PEER.search("ValueError: bad batch on rank 1")

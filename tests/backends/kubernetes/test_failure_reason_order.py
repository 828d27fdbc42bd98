"""Which node a failed training job names: the one whose runner said why, whenever it ended."""

from __future__ import annotations

from workbench.backends.kubernetes.train import first_failure

from .test_status import _failed_node, _say


def test_the_node_with_a_termination_message_is_named_before_an_earlier_silent_one() -> None:
    silent = _failed_node(1, 1, "2026-12-01T10:00:04Z")  # ended first: node 0 went away under it
    said = _failed_node(0, 1, "2026-12-01T10:00:05Z")
    _say(said, "--get missing_name: not defined when the code finished\n")
    named = first_failure([silent, said])
    assert named is not None
    assert named["metadata"]["name"] == "job-0"
    # without any message the earliest exit is named, as before
    _say(said, None)
    assert first_failure([silent, said])["metadata"]["name"] == "job-1"  # type: ignore[index]


def test_a_node_whose_message_says_it_lost_a_peer_is_named_after_the_one_that_failed() -> None:
    """Both nodes said why; rank 0's gloo read failed because node 1's rank had died first."""
    lost = _failed_node(0, 1, "2026-12-01T10:00:04Z")  # ended first, under its lost peer
    cause = _failed_node(1, 1, "2026-12-01T10:00:06Z")
    _say(
        lost,
        "[rank 0] RuntimeError: [third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
        "[127.0.0.1]:20364: Connection reset by peer\n",
    )
    _say(cause, "[rank 1] ValueError: bad batch on rank 1\n")
    named = first_failure([lost, cause])
    assert named is not None
    assert named["metadata"]["name"] == "job-1"
    # the node that failed first has no message (yet): a message that only says a peer went
    # away is no reason of its own
    _say(cause, None)
    assert first_failure([lost, cause])["metadata"]["name"] == "job-1"  # type: ignore[index]

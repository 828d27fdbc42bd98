"""Which node a failed training job names: the one whose runner said why, whenever it ended."""

from __future__ import annotations

from workbench.backends.kubernetes.train import first_failure

from .test_status import _failed_node


def test_the_node_with_a_termination_message_is_named_before_an_earlier_silent_one() -> None:
    silent = _failed_node(1, 1, "2026-12-01T10:00:04Z")  # ended first: node 0 went away under it
    said = _failed_node(0, 1, "2026-12-01T10:00:05Z")
    said["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = (
        "--get missing_name: not defined when the code finished\n"
    )
    named = first_failure([silent, said])
    assert named is not None
    assert named["metadata"]["name"] == "job-0"
    # without any message the earliest exit is named, as before
    said["status"]["containerStatuses"][0]["state"]["terminated"].pop("message")
    assert first_failure([silent, said])["metadata"]["name"] == "job-1"  # type: ignore[index]

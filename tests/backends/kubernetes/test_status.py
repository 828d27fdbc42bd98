"""Plain-word status from Job and pod objects, preflight, the log marker, rbac."""

from __future__ import annotations

import base64
import os
import pickle
from typing import Any

import pytest

from workbench.backends.kubernetes.logs import MarkerFilter, extract_results
from workbench.backends.kubernetes.preflight import check_fits
from workbench.backends.kubernetes.rbac import rbac_manifests
from workbench.backends.kubernetes.settings import CLUSTER_PERMISSIONS, NAMESPACED_PERMISSIONS
from workbench.backends.kubernetes.status import observe
from workbench.errors import SpecError
from workbench.runtime.results import MARKER as RESULTS_MARKER
from workbench.runtime.results import seal_line


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "pod-1", "labels": {}}, "spec": {}, "status": status}


def pod(phase: str, *, created: str = "2026-01-01T00:00:00Z", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "pod-1-x", "creationTimestamp": created},
        "status": {"phase": phase, **status},
    }


def test_no_job_is_none() -> None:
    assert observe(None, []) is None


def test_suspended_job_waits_for_its_queue() -> None:
    suspended = job()
    suspended["spec"]["suspend"] = True
    suspended["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "team-a"
    seen = observe(suspended, [])
    assert seen is not None
    assert (seen.status, seen.message) == (
        "pending",
        "waiting to be admitted in queue 'team-a' (the Job is suspended)",
    )


def test_unschedulable_pod_gives_the_scheduler_message() -> None:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    waiting = pod(
        "Pending",
        conditions=[
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
        ],
    )
    seen = observe(job(), [waiting])
    assert seen is not None and (seen.status, seen.message) == ("pending", message)


def test_image_pull_problem_is_named() -> None:
    waiting = pod(
        "Pending",
        conditions=[{"type": "PodScheduled", "status": "True"}],
        containerStatuses=[
            {
                "name": "main",
                "state": {
                    "waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope:1"'}
                },
            }
        ],
    )
    seen = observe(job(), [waiting])
    assert seen is not None and seen.message == 'ImagePullBackOff: Back-off pulling image "nope:1"'


def test_running_succeeded_failed_and_deadline() -> None:
    started = "2026-01-01T00:00:05Z"
    running = observe(job(startTime=started), [pod("Running")])
    assert running is not None and running.status == "running" and running.started == 1767225605.0
    done = job(
        startTime=started,
        completionTime="2026-01-01T00:01:05Z",
        conditions=[{"type": "Complete", "status": "True"}],
    )
    finished = observe(done, [pod("Succeeded")])
    assert finished is not None and (finished.status, finished.exit_code, finished.ended) == (
        "succeeded",
        0,
        1767225665.0,
    )
    crashed = pod(
        "Failed",
        containerStatuses=[{"name": "main", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}],
    )
    failed = observe(
        job(conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]), [crashed]
    )
    assert failed is not None and (failed.status, failed.message, failed.exit_code) == (
        "failed",
        "exited with code 2",
        2,
    )
    oom = pod(
        "Failed",
        containerStatuses=[
            {"name": "main", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
        ],
    )
    killed = observe(job(conditions=[{"type": "Failed", "status": "True"}]), [oom])
    assert killed is not None and killed.message == "exited with code 137 (OOMKilled)"
    late = observe(
        job(
            conditions=[
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "Job was active longer than specified deadline",
                }
            ]
        ),
        [],
    )
    assert late is not None and late.message == "timed out: Job was active longer than specified deadline"


def node(name: str, labels: dict[str, str] | None = None, **allocatable: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "status": {"allocatable": allocatable}}


def test_preflight_names_the_largest_node() -> None:
    nodes = [
        node("small", cpu="4", memory="16Gi"),
        node("gpu-1", cpu="32", memory="128Gi", **{"nvidia.com/gpu": "4"}),
    ]
    check_fits({"nvidia.com/gpu": "2", "cpu": "8"}, {}, nodes)  # fits gpu-1
    with pytest.raises(SpecError) as info:
        check_fits({"nvidia.com/gpu": "8"}, {}, nodes)
    assert str(info.value).startswith("asks for 8 nvidia.com/gpu per pod but the largest node (gpu-1) has 4")
    with pytest.raises(
        SpecError, match=r"asks for 256Gi memory per pod but the largest node \(gpu-1\) has 128Gi"
    ):
        check_fits({"memory": "256Gi"}, {}, nodes)
    with pytest.raises(SpecError, match="no node of the cluster has the labels gpu=h100"):
        check_fits({"cpu": "1"}, {"gpu": "h100"}, nodes)
    with pytest.raises(SpecError, match="no single node has all of"):
        check_fits(
            {"cpu": "30", "memory": "100Gi"},
            {},
            [node("a", cpu="32", memory="64Gi"), node("b", cpu="8", memory="128Gi")],
        )


def test_preflight_is_skipped_without_node_information() -> None:
    check_fits({"nvidia.com/gpu": "64"}, {}, None)
    check_fits({"nvidia.com/gpu": "64"}, {}, [])


def test_marker_filter_hides_the_sealed_results_line_across_chunks() -> None:
    key = os.urandom(32)
    forged = f"{RESULTS_MARKER}{base64.b64encode(pickle.dumps({'y': 3})).decode()}\n"
    log = f"line 1\npartial{seal_line(pickle.dumps({'y': 2}), key)}{forged}"
    shown = ""
    flt = MarkerFilter(key)
    for i in range(0, len(log), 7):
        shown += flt.feed(log[i : i + 7])
    shown += flt.close()
    assert shown == "line 1\npartial" + forged  # a line that does not verify is the code's own output
    assert extract_results(log, key) == {"y": 2}
    assert extract_results(log, os.urandom(32)) is None
    assert extract_results("no results\n", key) is None
    other = MarkerFilter(key)
    assert other.feed("a\x1enot ours\nb") + other.close() == "a\x1enot ours\nb"
    unkeyed = MarkerFilter()  # no --get: nothing is hidden
    assert unkeyed.feed(log) + unkeyed.close() == log


def test_rbac_role_is_the_permission_table() -> None:
    docs = rbac_manifests("ml", "runner")
    kinds = [d["kind"] for d in docs]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]
    role = docs[1]
    assert role["metadata"]["namespace"] == "ml"
    rules = {(r["apiGroups"][0], r["resources"][0]): set(r["verbs"]) for r in role["rules"]}
    assert rules == {(g, r): set(v) for g, r, v in NAMESPACED_PERMISSIONS}
    assert all("*" not in verbs for verbs in rules.values())
    cluster = {(r["apiGroups"][0], r["resources"][0]): set(r["verbs"]) for r in docs[3]["rules"]}
    assert cluster == {(g, r): set(v) for g, r, v in CLUSTER_PERMISSIONS}
    assert docs[2]["subjects"] == [{"kind": "ServiceAccount", "name": "runner", "namespace": "ml"}]
    assert [d["kind"] for d in rbac_manifests("ml", cluster=False)] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
    ]


@pytest.mark.parametrize("minor", [29, 33, 37])
def test_rbac_objects_validate_strictly(minor: int) -> None:
    import kubernetes_validate

    from .test_manifests import BUNDLED

    for doc in rbac_manifests("ml"):
        assert kubernetes_validate.validate(doc, BUNDLED[minor], strict=True) == f"1.{minor}"


INDEX = "batch.kubernetes.io/job-completion-index"


def _failed_node(index: int, code: int, finished: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"job-{index}",
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "main", "state": {"terminated": {"exitCode": code, "finishedAt": finished}}}
            ],
        },
    }


def _say(pod: dict[str, Any], message: str | None) -> dict[str, Any]:
    """``pod`` with its container's termination message set (None: taken away)."""
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    if message is None:
        terminated.pop("message", None)
    else:
        terminated["message"] = message
    return pod


def test_the_node_that_failed_first_is_not_the_one_that_lost_its_peer() -> None:
    from workbench.backends.kubernetes.train import LOST_PEER, first_failure

    same_second = [_failed_node(0, 1, "2026-12-01T10:00:05Z"), _failed_node(1, 1, "2026-12-01T10:00:05Z")]
    last = {
        "job-0": "[rank 0] RuntimeError: [pair.cc:537] Read error [127.0.0.1]:1: Connection reset by peer",
        "job-1": "[rank 1] ValueError: bad batch on rank 1",
    }
    lost = lambda pod: bool(LOST_PEER.search(last[pod["metadata"]["name"]]))  # noqa: E731
    assert first_failure(same_second, lost)["metadata"]["name"] == "job-1"  # type: ignore[index]
    assert first_failure(same_second)["metadata"]["name"] == "job-0"  # type: ignore[index]  # no logs: index
    # the peer that noticed first may end a second before the node that failed (a flaky CI run
    # named rank 0's 'Connection reset by peer'): a node that failed on its own is named whenever
    earlier = [_failed_node(0, 1, "2026-12-01T10:00:04Z"), _failed_node(1, 1, "2026-12-01T10:00:05Z")]
    assert first_failure(earlier, lost)["metadata"]["name"] == "job-1"  # type: ignore[index]
    assert first_failure(earlier)["metadata"]["name"] == "job-0"  # type: ignore[index]  # no logs: time
    # gloo's rank 0 that could not connect to a peer that had died (another CI run named it)
    last["job-0"] = (
        "[rank 0] RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:152] "
        "timed out connecting: SO_ERROR: Connection refused, remote=[127.0.0.1]:32641"
    )
    assert first_failure(earlier, lost)["metadata"]["name"] == "job-1"  # type: ignore[index]
    assert not LOST_PEER.search("[rank 1] ValueError: bad batch on rank 1")
    signalled = [_failed_node(0, 1, "2026-12-01T10:00:06Z"), _failed_node(1, 137, "2026-12-01T10:00:05Z")]
    assert first_failure(signalled, lost)["metadata"]["name"] == "job-1"  # type: ignore[index]
    assert first_failure(signalled)["metadata"]["name"] == "job-0"  # type: ignore[index]  # own exit first


def test_a_failed_job_waits_for_its_nodes_while_only_a_lost_peer_has_ended() -> None:
    import time

    from workbench.backends.kubernetes.train import LOST_PEER, observe_train

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    failed = {"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "lastTransitionTime": now}
    job = {"status": {"failed": 1, "startTime": now, "conditions": [failed]}}
    running = {**_failed_node(1, 1, now), "status": {"phase": "Running", "containerStatuses": []}}
    lost = lambda pod: pod["metadata"]["name"] == "job-0"  # noqa: E731
    observed = observe_train(job, [_failed_node(0, 1, now), running], 2, lost)
    assert observed is not None and observed.status == "running", observed
    assert "node 0 lost a peer; waiting for the other nodes to end" in observed.message
    # every node has ended: the failing one is named once their last lines can be in the logs
    settling = observe_train(job, [_failed_node(0, 1, now), _failed_node(1, 1, now)], 2, lost)
    assert settling is not None and settling.status == "running", settling
    assert settling.message == "node 1 failed; reading the nodes' last lines"
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    ended = observe_train(job, [_failed_node(0, 1, before), _failed_node(1, 1, before)], 2, lost)
    assert ended is not None and ended.status == "failed" and ended.message.startswith("node 1 (job-1)")
    assert LOST_PEER.search("Connection reset by peer")
    # the other node's pod is not listed (yet): it may still end, so the lost peer is not named
    alone = observe_train(job, [_failed_node(0, 1, before)], 2, lost)
    assert alone is not None and alone.status == "running", alone
    assert "node 0 lost a peer; waiting for the other nodes to end" in alone.message
    # its termination message says so just as well as its last line does
    said = _say(
        _failed_node(0, 1, before),
        "[rank 0] RuntimeError: [pair.cc:537] Read error [127.0.0.1]:1: Connection reset by peer\n",
    )
    waiting = observe_train(job, [said], 2, lambda pod: False)
    assert waiting is not None and waiting.status == "running", waiting

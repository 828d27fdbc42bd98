"""Names workbench sets itself (GPU grant, runtime paths, ranks, labels) cannot come from a spec.

For every kind and backend: the spec models refuse them, in one line, whatever the front end.
"""

from __future__ import annotations

from typing import Any

import pytest

from workbench.errors import SpecError
from workbench.spec import KINDS, NotebookSpec, parse_spec

BASE: dict[str, dict[str, Any]] = {
    "pod": {"kind": "pod", "code": "x = 1"},
    "dask": {"kind": "dask"},
    "train": {"kind": "train", "code": "import torch"},
    "notebook": {"kind": "notebook", "notebook": "analysis.ipynb"},
    "serve": {"kind": "serve", "code": "def predict(inputs):\n    return inputs\n"},
}

RESERVED_ENV = [
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "WORKBENCH_RUN_DIR",
    "WORKBENCH_OUTPUT_DIR",
    "WORKBENCH_WORKLOAD_ID",
    "WORKBENCH_HOME",
    "WORKBENCH_SIGN_PROVENANCE",
    "WORKBENCH_ANYTHING_NEW",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "JOB_COMPLETION_INDEX",
    "TORCHELASTIC_RESTART_COUNT",
    "PET_NNODES",
]


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    line = info.value.one_line()
    assert "\n" not in line
    return line


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", RESERVED_ENV)
def test_reserved_env_names_are_refused_for_every_kind(kind: str, name: str) -> None:
    for env in ({name: "0,1"}, [f"{name}=0,1"]):
        line = _error({**BASE[kind], "env": env})
        assert line.startswith(f"invalid --env (env): {name} is set by workbench")
    line = _error({**BASE[kind], "secrets": [f"{name}=token:key"]})
    assert line.startswith(f"invalid --secret (secrets): {name} is set by workbench")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("CUDA_VISIBLE_DEVICES", "ask for GPUs with --gpus N"),
        ("NVIDIA_VISIBLE_DEVICES", "ask for GPUs with --gpus N"),
        ("WORKBENCH_RUN_DIR", "every WORKBENCH_* name is reserved"),
        ("WORKBENCH_SIGN_PROVENANCE", "sign a notebook run with --sign"),
        ("MASTER_PORT", "--nodes and --procs-per-node"),
    ],
)
def test_reserved_env_messages_say_what_to_do(name: str, words: str) -> None:
    assert words in _error({**BASE["train"], "env": {name: "1"}})


@pytest.mark.parametrize(
    "name",
    # tuning the workbench only defaults: --cpu sets the thread counts unless the spec does
    ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "TORCH_GLOO_LAZY_INIT", "NCCL_DEBUG", "CUDA_DEVICE_ORDER"],
)
def test_tuning_variables_stay_allowed(name: str) -> None:
    for kind in KINDS:
        spec = parse_spec({**BASE[kind], "env": {name: "1"}, "resources": {"cpu": "2"}})
        assert spec.env == {name: "1"}


def test_dask_worker_variables_are_refused_for_dask_only() -> None:
    for name in ("DASK_SCHEDULER_ADDRESS", "DASK_WORKER_NAME"):
        assert "set by the Dask operator" in _error({**BASE["dask"], "env": {name: "x"}})
        assert "set by the Dask operator" in _error({**BASE["dask"], "secrets": [f"{name}=s:k"]})
    # a pod may well talk to a Dask cluster
    assert parse_spec({**BASE["pod"], "env": {"DASK_SCHEDULER_ADDRESS": "tcp://s:8786"}}).env


def test_a_variable_is_given_once() -> None:
    line = _error({**BASE["pod"], "env": {"TOKEN": "x"}, "secrets": ["TOKEN=s:k"]})
    assert "environment variable TOKEN is given twice (by --env and --secret)" in line
    line = _error({**BASE["notebook"], "secrets": ["T=a:b", "T=c:d"]})
    assert "T is given twice (by --secret twice)" in line


RESERVED_LABELS = [
    "workbench.jupyter.org/name",
    "workbench.jupyter.org/id",
    "workbench.jupyter.org/kind",
    "workbench.jupyter.org/owner",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/name",
    "app.kubernetes.io/component",
    "kueue.x-k8s.io/queue-name",
    "batch.kubernetes.io/job-name",
    "job-name",
    "controller-uid",
    "dask.org/cluster-name",
    "training.kubeflow.org/replica-type",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", RESERVED_LABELS)
def test_reserved_labels_are_refused_for_every_kind_and_backend(kind: str, key: str) -> None:
    for backend in ("local", "kubernetes"):
        line = _error({**BASE[kind], "backend": backend, "labels": {key: "mine"}})
        assert line.startswith(f"invalid --label (labels): label {key!r} is set by workbench")


def test_other_labels_and_node_selectors_stay_allowed() -> None:
    labels = {"team": "ml", "example.com/project": "llm", "app.kubernetes.io/part-of": "search"}
    spec = parse_spec({**BASE["pod"], "labels": labels, "node_selector": {"kubernetes.io/arch": "amd64"}})
    assert spec.labels == labels


def test_the_queue_label_points_at_queue() -> None:
    assert "give the queue with --queue" in _error(
        {**BASE["pod"], "labels": {"kueue.x-k8s.io/queue-name": "q"}}
    )


def test_every_label_the_kubernetes_backend_sets_is_reserved() -> None:
    from workbench.backends.kubernetes.settings import QUEUE_LABEL, workload_labels

    for key in [*workload_labels("wl-1", "pod", "Ada"), QUEUE_LABEL]:
        assert "is set by workbench" in _error({**BASE["pod"], "labels": {key: "x"}}), key


def test_every_variable_the_backends_set_is_reserved() -> None:
    from workbench.backends.kubernetes.dask_manifests import OPERATOR_ENV
    from workbench.backends.kubernetes.manifests import RUNTIME_ENV
    from workbench.backends.kubernetes.notebook_manifests import _NOTEBOOK_ENV

    for name in (*RUNTIME_ENV, *_NOTEBOOK_ENV):
        for kind in KINDS:
            assert f"{name} is set by" in _error({**BASE[kind], "env": {name: "x"}}), (name, kind)
    for name in OPERATOR_ENV:
        assert f"{name} is set by" in _error({**BASE["dask"], "env": {name: "x"}}), name


def test_sign_is_a_field_of_notebook_specs() -> None:
    spec = parse_spec({**BASE["notebook"], "sign": True})
    assert isinstance(spec, NotebookSpec) and spec.sign
    assert NotebookSpec.model_validate(BASE["notebook"]).sign is False
    assert "is not a field of this kind" in _error({**BASE["pod"], "sign": True})

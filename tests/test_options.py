"""Flags generated from the spec models: one definition, shared by the CLI and the magics."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.errors import SpecError
from workbench.options import ArgumentParser, HelpShown, add_spec_options, spec_fields
from workbench.spec import KINDS, PodSpec, parse_spec

# --gpus 1 --memory 4Gi --env A=1 --env B=2 --send a,b --get c --timeout 30s
ARGV = ["--gpus", "1", "--memory", "4Gi", "--env", "A=1", "--env", "B=2"]
ARGV += ["--send", "a,b", "--get", "c", "--timeout", "30s"]


def parse(kind: str, argv: list[str], **options: Any) -> dict[str, Any]:
    parser = ArgumentParser(prog=f"workbench {kind}")
    add_spec_options(parser, kind, **options)
    return spec_fields(parser.parse_args(argv), kind)


def test_flags_become_the_nested_raw_dict() -> None:
    assert parse("pod", ARGV) == {
        "kind": "pod",
        "resources": {"gpus": "1", "memory": "4Gi"},
        "env": ["A=1", "B=2"],
        "send": ["a", "b"],  # comma-separated names are split where the flags are read
        "get": ["c"],
        "timeout": "30s",
    }


def test_raw_dict_from_flags_validates() -> None:
    spec = parse_spec({**parse("pod", ARGV), "code": "c = a + b"})
    assert isinstance(spec, PodSpec)
    assert spec.resources.gpus == 1
    assert spec.resources.memory == "4Gi"
    assert spec.env == {"A": "1", "B": "2"}
    assert spec.send == ["a", "b"]
    assert spec.get == ["c"]
    assert spec.timeout == 30.0


@pytest.mark.parametrize("kind", KINDS)
def test_absent_flags_are_absent(kind: str) -> None:
    assert parse(kind, []) == {"kind": kind}


def test_only_given_flags_appear() -> None:
    raw = parse("pod", ["--name", "job-1", "--cpu", "500m"])
    assert raw == {"kind": "pod", "name": "job-1", "resources": {"cpu": "500m"}}
    assert "resources" not in parse("pod", ["--name", "job-1"])


def test_repeatable_flags_collect_lists() -> None:
    raw = parse(
        "train",
        [
            "--secret", "TOKEN=hf-token:token",
            "--volume", "pvc/data:/data:ro",
            "--volume", "emptydir:/scratch",
            "--label", "team=ml",
            "--node-selector", "zone=a",
            "--nodes", "2",
            "--procs-per-node", "4",
            "--operator", "kubeflow",
        ],
    )  # fmt: skip
    assert raw == {
        "kind": "train",
        "secrets": ["TOKEN=hf-token:token"],
        "volumes": ["pvc/data:/data:ro", "emptydir:/scratch"],
        "labels": ["team=ml"],
        "node_selector": ["zone=a"],
        "nodes": "2",
        "procs_per_node": "4",
        "operator": "kubeflow",
    }
    spec = parse_spec({**raw, "script": "train.py"})
    assert spec.volumes[0].read_only is True
    assert spec.labels == {"team": "ml"}
    assert (spec.nodes, spec.procs_per_node) == (2, 4)


def test_store_true_flag() -> None:
    assert parse("dask", ["--keep"]) == {"kind": "dask", "keep": True}
    assert "keep" not in parse("dask", ["--workers", "3"])
    raw = parse("dask", ["--workers", "3", "--adapt", "1:4", "--idle-timeout", "5m"])
    assert raw == {"kind": "dask", "workers": "3", "adapt": "1:4", "idle_timeout": "5m"}
    spec = parse_spec(raw)
    assert (spec.workers, spec.adapt.minimum, spec.adapt.maximum, spec.idle_timeout) == (3, 1, 4, 300.0)


@pytest.mark.parametrize(
    ("kind", "present", "missing"),
    [
        ("pod", ["--retries", "--send", "--get", "--output"], ["--workers", "--nodes", "--checkpoint-dir"]),
        ("dask", ["--workers", "--threads", "--adapt", "--idle-timeout", "--keep"], ["--send", "--output"]),
        (
            "train",
            ["--nodes", "--procs-per-node", "--max-restarts", "--operator", "--checkpoint-dir", "--output"],
            ["--workers", "--keep"],
        ),
        ("notebook", ["--output", "--kernel", "--schedule", "--strict"], ["--send", "--get", "--nodes"]),
    ],
)
def test_each_kind_has_its_own_flags(kind: str, present: list[str], missing: list[str]) -> None:
    parser = ArgumentParser(prog="wb")
    add_spec_options(parser, kind)
    flags = {option for action in parser._actions for option in action.option_strings}
    common = {"--name", "--image", "--env", "--secret", "--volume", "--cpu", "--memory", "--gpus"}
    assert common <= flags
    assert {"--gpu-type", "--shm", "--timeout", "--label", "--profile", "--backend", "--queue"} <= flags
    assert set(present) <= flags
    assert not set(missing) & flags


def test_unknown_flag_is_spec_error() -> None:
    with pytest.raises(SpecError) as info:
        parse("pod", ["--gpu", "1"])
    line = info.value.one_line()
    assert "workbench pod" in line
    assert "--gpu" in line
    assert "`workbench pod --help` lists the options" in line


def test_unknown_extra_argument_is_spec_error() -> None:
    with pytest.raises(SpecError, match="unrecognized arguments: --bogus"):
        parse("dask", ["--workers", "2", "--bogus"])


def test_flag_without_value_is_spec_error() -> None:
    with pytest.raises(SpecError, match="argument --workers: expected one argument"):
        parse("dask", ["--workers"])


def test_skipped_field_has_no_flag() -> None:
    assert parse("pod", ["--cpu", "1"], skip=["resources.gpus"]) == {"kind": "pod", "resources": {"cpu": "1"}}
    with pytest.raises(SpecError, match="unrecognized arguments: --gpus 1"):
        parse("pod", ["--gpus", "1"], skip=["resources.gpus"])


def test_help_raises_help_shown(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(HelpShown):
        parse("pod", ["--help"])
    out = capsys.readouterr().out
    assert "usage: workbench pod" in out
    assert "--gpus N" in out
    assert "whole number of NVIDIA GPUs" in out
    assert "--env K=V" in out


def test_help_shown_is_not_a_workbench_error() -> None:
    assert not issubclass(HelpShown, SpecError)

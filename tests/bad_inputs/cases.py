"""The table of bad inputs (issue 12): one row per thing a user, or an adversary, may give.

Every front end must refuse each row before anything is created, in one line that names the
bad value: the CLI exits 2 with one line on stderr, the Python API raises a
:class:`~workbench.errors.WorkbenchError` (a ``SpecError`` for a bad spec), a magic fails the
cell with one line and no traceback, the REST API answers 4xx with the error as JSON.

:data:`FIELDS` holds bad values of spec fields; each row is given as flags (the CLI and the
magics) and as spec fields (the Python API and the REST API), so one row is a case in each
front end that can express it. The ``*_ONLY`` tables hold what only one front end can be given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.service import Service

CLI, API, MAGIC, REST = "cli", "api", "magic", "rest"
FRONTS = (CLI, API, MAGIC, REST)

#: what each kind runs when the row does not say: the CLI's and the REST API's file, the cell
SCRIPT = "ok.py"
NOTEBOOK = "nb.ipynb"
CELL = "print('never runs')"


@dataclass(frozen=True)
class Field:
    """A bad value of a spec field.

    Attributes:
        id: the case's name.
        kind: pod, train, dask or notebook.
        flags: as typed after the command (``workbench run ok.py …``, ``%%pod …``); None: no flag.
        spec: the same as spec fields, merged into the kind's base spec; None: only flags say it.
        value: the bad value, as the one line must name it.
        says: more text the line must hold.
        target: the notebook or script to run instead of the usual one.
        skip: front ends the row does not apply to.
    """

    id: str
    kind: str
    flags: tuple[str, ...] | None
    spec: dict[str, Any] | None
    value: str
    says: str = ""
    target: str | None = None
    skip: tuple[str, ...] = ()

    def applies(self, front: str) -> bool:
        if front in self.skip:
            return False
        if front in (CLI, MAGIC):
            return self.flags is not None and not (
                front == MAGIC and self.kind in ("pod", "train") and self.target
            )
        return self.spec is not None

    def full_spec(self) -> dict[str, Any]:
        base: dict[str, Any] = {"kind": self.kind}
        if self.kind in ("pod", "train"):
            base.update({"script": self.target} if self.target else {"code": CELL})
        elif self.kind == "notebook":
            base["notebook"] = self.target or NOTEBOOK
        return _merge(base, self.spec or {})

    def argv(self) -> list[str]:
        head = {
            "pod": ["run", self.target or SCRIPT],
            "train": ["train", self.target or SCRIPT],
            "dask": ["dask", "up"],
            "notebook": ["notebook", "run", self.target or NOTEBOOK],
        }[self.kind]
        return [*head, *(self.flags or ())]

    def cell(self) -> str:
        import shlex

        line = shlex.join(self.flags or ())
        if self.kind in ("pod", "train"):
            return f"%%{self.kind} {line}\n{CELL}"
        if self.kind == "dask":
            return f"client = %dask {line}"
        return f"%batch {shlex.quote(self.target or NOTEBOOK)} {line}"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


#: flag → spec path and whether the field is a list (a repeatable flag)
_PATHS: dict[str, tuple[tuple[str, ...], bool]] = {
    "--memory": (("resources", "memory"), False),
    "--memory-per-worker": (("resources", "memory"), False),
    "--cpu": (("resources", "cpu"), False),
    "--gpus": (("resources", "gpus"), False),
    "--gpus-per-node": (("resources", "gpus"), False),
    "--gpus-per-worker": (("resources", "gpus"), False),
    "--gpu-type": (("resources", "gpu_type"), False),
    "--shm": (("resources", "shm"), False),
    "--env": (("env",), True),
    "--label": (("labels",), True),
    "--node-selector": (("node_selector",), True),
    "--secret": (("secrets",), True),
    "--volume": (("volumes",), True),
    "--send": (("send",), True),
    "--get": (("get",), True),
}


def _spec_of(flags: tuple[str, ...]) -> dict[str, Any]:
    """The spec fields that ``flags`` (pairs of ``--flag value``, or ``--flag=value``) stand for."""
    spec: dict[str, Any] = {}
    words = list(flags)
    while words:
        word = words.pop(0)
        flag, sep, value = word.partition("=")
        if not sep:
            value = words.pop(0)
        path, many = _PATHS.get(flag, ((flag.removeprefix("--").replace("-", "_"),), False))
        target = spec
        for part in path[:-1]:
            target = target.setdefault(part, {})
        if many:
            target.setdefault(path[-1], []).append(value)
        else:
            target[path[-1]] = value
    return spec


def row(
    kind: str,
    *flags: str,
    value: str | None = None,
    says: str = "",
    id: str | None = None,
    spec: dict[str, Any] | None = None,
    target: str | None = None,
    skip: tuple[str, ...] = (),
) -> Field:
    """A row from flags; its spec fields are the same values unless ``spec`` is given."""
    shown = value if value is not None else flags[-1]
    name = id or f"{kind}{' '.join(flags)}".replace(" ", "_")[:60]
    return Field(name, kind, flags, spec if spec is not None else _spec_of(flags), shown, says, target, skip)


FIELDS: list[Field] = [
    # -- resources -----------------------------------------------------------------------------
    row("pod", "--memory", "-1Gi", says="more than zero bytes"),
    row("pod", "--memory", "0", value="'0'", says="more than zero bytes"),
    row("pod", "--memory", "4 gigs", says="not a quantity"),
    row("pod", "--memory", "512", value="'512'", says="under 1Mi"),
    row("pod", "--memory", "999999Ei", says="more memory than this host has"),
    row("pod", "--memory", "1e400", says="more memory than this host has"),
    row("pod", "--memory", "NaN", says="not a quantity"),
    row("pod", "--memory", "", value="''", says="not a quantity", id="pod--memory_empty"),
    row("pod", "--cpu", "-2", value="'-2'", says="less than 1m"),
    row("pod", "--cpu", "0", value="'0'", says="less than 1m"),
    row("pod", "--cpu", "lots", says="not a quantity"),
    row("pod", "--cpu", "1e9", says="more cores than this host has"),
    row("pod", "--cpu", "1e400", says="more cores than this host has"),
    row("pod", "--cpu", "0.0001", says="less than 1m"),
    row("pod", "--cpu", "2x", says="not a quantity"),
    row("pod", "--gpus", "-1", says="negative"),
    row("pod", "--gpus", "1.5", says="whole number"),
    row("pod", "--gpus", "two", says="whole number"),
    row("pod", "--gpus", "4096", says="this host has"),
    row("pod", "--gpus", "1e400", says="whole number"),
    row("pod", "--gpu-type", "A100", says="needs --gpus"),
    row("pod", "--gpus", "1", "--gpu-type", "bad type!", says="label value"),
    row("pod", "--shm", "-1Gi", says="more than zero bytes"),
    row("pod", "--shm", "999999Ei", says="more memory than this host has"),
    row("pod", "--shm", "tiny", says="not a quantity"),
    row("train", "--memory", "999999Ei", says="more memory than this host has"),
    row("train", "--cpu", "1e9", says="more cores than this host has"),
    row("train", "--gpus-per-node", "-1", says="negative"),
    # -- name, image, timeout --------------------------------------------------------------------
    row("pod", "--name", "Bad_Name", says="lower-case"),
    row("pod", "--name", "a" * 50, says="at most 40", id="pod--name_too_long"),
    row("pod", "--name", "a b", says="lower-case"),
    row("pod", "--name", "UPPER", says="lower-case"),
    row("pod", "--name", "x.y", says="lower-case"),
    row("pod", "--name=-lead", value="-lead", says="lower-case"),
    row("pod", "--name", "", value="''", says="lower-case", id="pod--name_empty"),
    row("pod", "--image", "has space", says="without spaces"),
    row("pod", "--image", "", value="''", says="without spaces", id="pod--image_empty"),
    row("pod", "--timeout", "soon", says="not a duration"),
    row("pod", "--timeout", "-1", says="positive duration"),
    row("pod", "--timeout", "0", says="positive duration"),
    row("pod", "--timeout", "1e400", says="positive duration"),
    row("pod", "--timeout", "nan", says="positive duration"),
    row("pod", "--timeout", "5x", says="not a duration"),
    # -- environment, labels, node selectors ---------------------------------------------------
    row("pod", "--env", "NOEQUALS", says="KEY=VALUE"),
    row("pod", "--env", "=v", value="'=v'", says="KEY=VALUE"),
    row("pod", "--env", "1A=x", value="1A", says="variable name"),
    row("pod", "--env", "A-B=1", value="A-B", says="variable name"),
    row("pod", "--env", "WORKBENCH_X=1", value="WORKBENCH_X", says="reserved"),
    row("pod", "--env", "CUDA_VISIBLE_DEVICES=0", value="CUDA_VISIBLE_DEVICES", says="--gpus"),
    row("pod", "--env", "RANK=1", value="RANK", says="torchrun"),
    row("train", "--env", "MASTER_PORT=1", value="MASTER_PORT", says="torchrun"),
    row("pod", "--env", "TWICE=1", "--secret", "TWICE=s:k", value="TWICE", says="given twice"),
    row("pod", "--label", "noequals", says="KEY=VALUE"),
    row("pod", "--label", "team=bad value", value="bad value", says="label value"),
    row("pod", "--label", "Bad Key=1", value="Bad Key", says="label key"),
    row(
        "pod",
        "--label",
        "workbench.jupyter.org/x=1",
        value="workbench.jupyter.org/x",
        says="set by workbench",
    ),
    row("pod", "--label", "job-name=x", value="job-name", says="set by workbench"),
    row("pod", "--node-selector", "nodeless", says="KEY=VALUE"),
    row("pod", "--node-selector", "zone=bad value", value="bad value", says="label value"),
    # -- secrets and volumes ---------------------------------------------------------------------
    row("pod", "--secret", "NOEQUALS", says="ENV=SECRET:KEY"),
    row("pod", "--secret", "TOKEN=nocolon", value="nocolon", says="ENV=SECRET:KEY"),
    row("pod", "--secret", "TOKEN=hf-token:tok", value="hf-token:tok", says="does not exist"),
    row("pod", "--secret", "1X=s:k", value="1X", says="variable name"),
    row("pod", "--secret", "A=Bad_Secret:k", value="Bad_Secret", says="DNS name"),
    row("pod", "--secret", "A=s:k/ey", value="k/ey", says="secret key"),
    row("pod", "--secret", "NVIDIA_VISIBLE_DEVICES=s:k", value="NVIDIA_VISIBLE_DEVICES", says="--gpus"),
    row("pod", "--volume", "nocolon", says="TYPE[/NAME]:MOUNT"),
    row("pod", "--volume", "pvc:/data", value="pvc", says="DNS name"),
    row("pod", "--volume", "nfs/x:/data", value="nfs", says="pvc"),
    row("pod", "--volume", "pvc/data:relative", value="relative", says="absolute"),
    row("pod", "--volume", "pvc/data:/a/../b", value="/a/../b", says="absolute"),
    row("pod", "--volume", "emptydir/scratchname:/s", value="scratchname", says="takes no name"),
    row("pod", "--volume", "pvc/data:/d:rx", value="rx", says="ro or rw"),
    # -- where and how it runs ----------------------------------------------------------------
    row("pod", "--profile", "a100", says="unknown profile"),
    row("pod", "--backend", "cloud", says="'local' or 'kubernetes'"),
    row("pod", "--queue", "Bad_Q", says="Kubernetes object name"),
    row("pod", "--priority-class", "UPPER_P", says="Kubernetes object name"),
    row("pod", "--retries", "-1", says="greater than or equal to 0"),
    row("pod", "--retries", "11", says="less than or equal to 10"),
    row("pod", "--retries", "x", says="valid integer"),
    # -- variables sent in and brought back (the CLI runs files: it has no --send) -------------
    row("pod", "--send", "absent_var", says="no such variable", skip=(CLI,)),
    row("pod", "--send", "1x", says="not a Python variable name", skip=(CLI,)),
    row("pod", "--send", ",", value="','", says="names no variable", skip=(CLI,)),
    row("pod", "--get", "1x", says="not a Python variable name", skip=(CLI,)),
    row("pod", "--get", "a,b-c", value="b-c", says="not a Python variable name", skip=(CLI,)),
    row("train", "--send", "absent_var", says="no such variable", skip=(CLI,)),
    row("train", "--get", "9lives", says="not a Python variable name", skip=(CLI,)),
    # -- scripts ---------------------------------------------------------------------------------
    row(
        "pod",
        "--cpu",
        "1",
        value="missing.py",
        says="cannot read script",
        target="missing.py",
        id="pod_missing_script",
    ),
    row("pod", "--cpu", "1", value="data.txt", says="must be a .py file", target="data.txt", id="pod_not_py"),
    row(
        "pod",
        "--cpu",
        "1",
        value="folder.py",
        says="cannot read script",
        target="folder.py",
        id="pod_script_folder",
    ),
    row(
        "train",
        "--cpu",
        "1",
        value="missing.py",
        says="cannot read script",
        target="missing.py",
        id="train_missing_script",
    ),
    # -- training --------------------------------------------------------------------------------
    row("train", "--nodes", "0", says="greater than or equal to 1"),
    row("train", "--nodes", "2000", says="less than or equal to 1024"),
    row("train", "--nodes", "-3", says="greater than or equal to 1"),
    row("train", "--procs-per-node", "0", says="greater than or equal to 1"),
    row("train", "--procs-per-node", "65", says="less than or equal to 64"),
    row("train", "--max-restarts", "-1", says="greater than or equal to 0"),
    row("train", "--max-restarts", "101", says="less than or equal to 100"),
    row("train", "--operator", "mpi", says="'job' or 'kubeflow'"),
    row("train", "--name", "Train_Job", says="lower-case"),
    # -- Dask ------------------------------------------------------------------------------------
    row("dask", "--workers", "0", says="greater than or equal to 1"),
    row("dask", "--workers", "100000", says="less than or equal to 1000"),
    row("dask", "--workers", "x", says="valid integer"),
    row("dask", "--workers", "-2", says="greater than or equal to 1"),
    row("dask", "--threads", "0", says="greater than or equal to 1"),
    row("dask", "--threads", "1000", says="less than or equal to 256"),
    row("dask", "--adapt", "5:1", value="5:1", says="MIN above MAX"),
    row("dask", "--adapt", "x", says="MIN:MAX"),
    row("dask", "--adapt", "1:100000", value="100000", says="less than or equal to 1000"),
    row("dask", "--adapt", "-1:4", value="-1:4", says="MIN:MAX"),
    row("dask", "--idle-timeout", "-5", says="positive duration"),
    row("dask", "--idle-timeout", "later", says="not a duration"),
    row("dask", "--memory-per-worker", "-1Gi", says="more than zero bytes"),
    row("dask", "--memory-per-worker", "999999Ei", says="more memory than this host has"),
    row("dask", "--cpu", "1e9", says="more cores than this host has"),
    row("dask", "--gpus-per-worker", "1.5", says="whole number"),
    row("dask", "--env", "DASK_SCHEDULER_ADDRESS=x", value="DASK_SCHEDULER_ADDRESS", says="Dask operator"),
    row("dask", "--name", "Cluster_1", says="lower-case"),
    # -- notebooks -------------------------------------------------------------------------------
    row(
        "notebook",
        "--kernel",
        "python3",
        value="int.ipynb",
        says="JSON int",
        target="int.ipynb",
        id="nb_json_int",
    ),
    row(
        "notebook",
        "--kernel",
        "python3",
        value="list.ipynb",
        says="JSON list",
        target="list.ipynb",
        id="nb_json_list",
    ),
    row(
        "notebook",
        "--kernel",
        "python3",
        value="notjson.ipynb",
        says="no JSON text",
        target="notjson.ipynb",
        id="nb_not_json",
    ),
    row(
        "notebook",
        "--kernel",
        "python3",
        value="binary.ipynb",
        says="no JSON text",
        target="binary.ipynb",
        id="nb_binary",
    ),
    row(
        "notebook",
        "--kernel",
        "python3",
        value="cells.ipynb",
        says="no list of cells",
        target="cells.ipynb",
        id="nb_cells_int",
    ),
    row(
        "notebook",
        "--kernel",
        "python3",
        value="nometa.ipynb",
        says="metadata",
        target="nometa.ipynb",
        id="nb_metadata_list",
    ),
    row(
        "notebook",
        "--kernel",
        "python3",
        value="badcell.ipynb",
        says="not a valid notebook",
        target="badcell.ipynb",
        id="nb_cell_without_source",
    ),
    row(
        "notebook",
        "--kernel",
        "python3",
        value="missing.ipynb",
        says="cannot read notebook",
        target="missing.ipynb",
        id="nb_missing",
    ),
    row(
        "notebook",
        "--kernel",
        "python3",
        value="folder.ipynb",
        says="cannot read notebook",
        target="folder.ipynb",
        id="nb_folder",
    ),
    row(
        "notebook",
        "--kernel",
        "python3",
        value="nb.txt",
        says="must be an .ipynb",
        target="nb.txt",
        id="nb_suffix",
    ),
    row(
        "notebook",
        "--strict",
        value="nokernel.ipynb",
        says="names no kernel",
        target="nokernel.ipynb",
        id="nb_no_kernel",
        spec={"strict": True},
    ),
    row("notebook", "--kernel", "nosuchkernel", says="is not installed here"),
    row(
        "notebook",
        "--strict",
        value="nosuchkernel2",
        says="is not installed here",
        target="otherkernel.ipynb",
        id="nb_metadata_kernel_missing",
        spec={"strict": True},
    ),
    row("notebook", "--output", "/proc/nope"),
    row("notebook", "--output", "afile", says="is a file, not a folder"),
    row("notebook", "--output", "afile/runs", says="is under"),
    row("notebook", "--output", "memory://runs", says="memory://"),
    row("notebook", "--output", "bogus://runs"),
    row(
        "notebook",
        "-p",
        "lr",
        "1e400",
        value="1e400",
        says="not a finite number",
        spec={"parameters": {"lr": "1e400"}},
    ),
    row(
        "notebook",
        "-p",
        "lr",
        "-1e999",
        value="-1e999",
        says="not a finite number",
        spec={"parameters": {"lr": "-1e999"}},
    ),
    row(
        "notebook",
        "-p",
        "lr",
        "fast",
        value="fast",
        says="declared float",
        spec={"parameters": {"lr": "fast"}},
    ),
    row("notebook", "-p", "n", "1.5", value="1.5", says="declared int", spec={"parameters": {"n": "1.5"}}),
    row(
        "notebook",
        "-p",
        "flag",
        "maybe",
        value="maybe",
        says="declared bool",
        spec={"parameters": {"flag": "maybe"}},
    ),
    row(
        "notebook",
        "--strict",
        "-p",
        "undeclared",
        "1",
        value="undeclared",
        says="not declared",
        spec={"strict": True, "parameters": {"undeclared": "1"}},
    ),
    row("notebook", "--schedule", "bad", says="schedule"),
    row("notebook", "--schedule", "61 * * * *", says="out of range"),
    row("notebook", "--schedule", "0 3 * * *", says="kubernetes backend"),
    row("notebook", "--memory", "999999Ei", says="more memory than this host has"),
    row("notebook", "--name", "Run_1", says="lower-case"),
]


@dataclass(frozen=True)
class CliCase:
    """``workbench ARGV`` (in the workspace), with ``env`` set, that must exit 2."""

    id: str
    argv: tuple[str, ...]
    value: str
    says: str = ""
    #: environment variables to set ("" removes one)
    env: dict[str, str] = field(default_factory=dict)
    #: a YAML config file's text; WORKBENCH_CONFIG points at it
    config: str | None = None


def cli(*argv: str, value: str, says: str = "", id: str | None = None, **env: str) -> CliCase:
    return CliCase(id or "_".join(argv)[:60] or "no-arguments", argv, value, says, dict(env))


def configured(text: str, *argv: str, value: str, says: str = "", id: str) -> CliCase:
    return CliCase(id, argv or ("ls",), value, says, {}, text)


NB_SWEEP = ("notebook", "run", NOTEBOOK)
CLI_ONLY: list[CliCase] = [
    cli(value="COMMAND", says="required"),
    cli("frobnicate", value="frobnicate", says="invalid choice"),
    cli("run", SCRIPT, "--bogus", value="--bogus", says="unrecognized"),
    cli("run", SCRIPT, "--gpu", "1", value="--gpu", says="ambiguous"),
    cli("run", SCRIPT, "--memory", value="--memory", says="expected one argument"),
    cli("run", SCRIPT, "--send", "a", value="--send", says="unrecognized"),
    cli("run", SCRIPT, "--dry-run", "-o", "xml", value="xml", says="invalid choice"),
    cli("run", value="SCRIPT", says="required"),
    cli("train", SCRIPT, "--nodes", value="--nodes", says="expected one argument"),
    cli("wait", "x", "--timeout", "-1", value="-1", says="positive duration"),
    cli("wait", "x", "--timeout", "0", value="0", says="positive duration"),
    cli("wait", "x", "--timeout", "soon", value="soon", says="not a duration"),
    cli("wait", "x", "--timeout", "1e400", value="1e400", says="positive duration"),
    cli("wait", "x", "--timeout", "nan", value="nan", says="positive duration"),
    cli("wait", "nope", value="nope", says="no workload named"),
    cli("logs", "nope", value="nope", says="no workload named"),
    cli("logs", "nope", "--follow", "--bogus", value="--bogus", says="unrecognized"),
    cli("describe", "nope", value="nope", says="no workload named"),
    cli("describe", "nope", "-o", "xml", value="xml", says="invalid choice"),
    cli("cancel", "nope", value="nope", says="no workload named"),
    cli("rm", "nope", value="nope", says="no workload named"),
    cli("export", "nope", value="nope", says="no workload named"),
    cli("verify", "nope", value="nope", says="no workload named"),
    cli("notebook", "rerun", "nope", value="nope", says="no workload named"),
    cli("ls", "--kind", "vm", value="vm", says="invalid choice"),
    cli("ls", "--status", "gone", value="gone", says="invalid choice"),
    cli("ls", "-o", "xml", value="xml", says="invalid choice"),
    cli("schema", "vm", value="vm", says="invalid choice"),
    cli("dask", value="ACTION", says="required"),
    cli("dask", "resize", "x", value="resize", says="invalid choice"),
    cli("dask", "up", "--keep", value="--keep", says="unrecognized"),
    cli("dask", "scale", "x", "100000", value="100000", says="from 0 to 1000"),
    cli("dask", "scale", "x", "1001", value="1001", says="from 0 to 1000"),
    cli("dask", "scale", "x", "-1", value="-1", says="from 0 to 1000"),
    cli("dask", "scale", "x", "two", value="two", says="whole number"),
    cli("dask", "scale", "x", "1.5", value="1.5", says="whole number"),
    cli("dask", "scale", "x", "\u00b2", value="\u00b2", says="whole number", id="dask_scale_superscript"),
    cli("dask", "adapt", "x", "5:1", value="5:1", says="MIN above MAX"),
    cli("dask", "adapt", "x", "1:100000", value="1:100000", says="at most 1000"),
    cli("dask", "adapt", "x", "x", value="'x'", says="MIN:MAX"),
    cli("dask", "adapt", "x", "1:", value="'1:'", says="MIN:MAX"),
    cli("dask", "address", "nope", value="nope", says="no workload named"),
    cli("dask", "down", "nope", value="nope", says="no workload named"),
    cli("serve", SCRIPT, "--replicas", "0", value="0", says="greater than or equal to 1"),
    cli("serve", SCRIPT, "--replicas", "101", value="101", says="less than or equal to 100"),
    cli("serve", SCRIPT, "--autoscale", "4:2", value="4:2", says="MIN above MAX"),
    cli("serve", SCRIPT, "--autoscale", "0:2", value="0:2", says="at least one replica"),
    cli(
        "serve",
        SCRIPT,
        "--replicas",
        "5",
        "--autoscale",
        "1:3",
        value="replicas 5",
        says="autoscale maximum 3",
    ),
    cli("serve", SCRIPT, "--max-body", "lots", value="lots", says="size like 16Mi"),
    cli("serve", SCRIPT, "--operator", "seldon", value="seldon", says="'kserve'"),
    cli("serve", SCRIPT, value=SCRIPT, says="defines no model"),
    cli("serve", SCRIPT, "--get", "y", value="--get", says="unrecognized"),
    cli("rollout", "nope", "--env", "A=1", value="nope", says="no workload named"),
    cli("rollout", "nope", value="--model-uri", says="a rollout needs a change"),
    cli("rollout", "nope", SCRIPT, "--canary", "150", value="150", says="less than or equal to 100"),
    cli("rollout", "nope", SCRIPT, "--canary", "-5", value="-5", says="greater than or equal to 0"),
    cli("rollout", "undo", "nope", value="nope", says="no workload named"),
    cli("rollout", "undo", value="undo", says="one endpoint name"),
    cli("rollout", "status", "a", "b", value="status", says="one endpoint name"),
    cli("rollout", "nope", "a.py", "b.py", value="b.py", says="at most one FILE"),
    cli("predict", "nope", "[[1,2]]", value="nope", says="no workload named"),
    cli("predict", "nope", "{oops", value="{oops", says="not JSON"),
    cli("scale", "nope", value="--replicas", says="required"),
    cli("scale", "nope", "--replicas", "0", value="0", says="from 1 to 100"),
    cli("scale", "nope", "--autoscale", "3:1", value="3:1", says="MIN above MAX"),
    cli(*NB_SWEEP, "--sweep", "lr", value="lr", says="NAME=v1,v2"),
    cli(*NB_SWEEP, "--sweep", "lr=", value="lr=", says="NAME=v1,v2"),
    cli(*NB_SWEEP, "--sweep", "1x=1,2", value="1x=1,2", says="NAME=v1,v2"),
    cli(*NB_SWEEP, "--sweep", "lr=1,2", "--sweep", "lr=3", value="lr", says="given twice"),
    cli(*NB_SWEEP, "--sweep", "lr=0.1,fast", value="fast", says="declared float"),
    cli(*NB_SWEEP, "--sweep", "n=1,2.5", value="2.5", says="declared int"),
    cli(*NB_SWEEP, "--sweep", "lr=0.1,1e400", value="1e400", says="not a finite number"),
    cli(*NB_SWEEP, "--sweep", "lr=1,2", "--parallel", "0", value="0", says="at least 1"),
    cli(*NB_SWEEP, "--sweep", "lr=1,2", "--parallel", "-1", value="-1", says="at least 1"),
    cli(*NB_SWEEP, "--sweep", "lr=1,2", "--parallel", "many", value="many", says="at least 1"),
    cli(*NB_SWEEP, "--sweep", "lr=1,2", "--detach", value="--detach", says="drop --detach"),
    cli(
        *NB_SWEEP, "--sweep", "lr=1,2", "--kernel", "nosuchkernel", value="nosuchkernel", says="not installed"
    ),
    cli(*NB_SWEEP, "-p", "lr", value="-p", says="expected 2 arguments"),
    cli(*NB_SWEEP, "-f", "missing.yaml", value="missing.yaml", says="cannot read"),
    cli(*NB_SWEEP, "-f", "list.yaml", value="list.yaml", says="mapping"),
    cli(*NB_SWEEP, "-f", "broken.yaml", value="broken.yaml", says="cannot read"),
    cli(*NB_SWEEP, "-f", "inf.yaml", value="lr", says="not a finite number"),
    cli(*NB_SWEEP, "--dry-run", "--format", "xml", value="xml", says="invalid choice"),
    cli("notebook", "run", value="NB.ipynb", says="required"),
    # settings from the environment and the config file
    cli("ls", value="{afile}", says="is a file, not a folder", id="home_is_a_file", WORKBENCH_HOME="{afile}"),
    cli("ls", value="{afile}/home", says="is under", id="home_under_a_file", WORKBENCH_HOME="{afile}/home"),
    cli(
        "ls",
        value="/proc/workbench",
        says="virtual filesystem",
        id="home_in_proc",
        WORKBENCH_HOME="/proc/workbench",
    ),
    cli("run", SCRIPT, value="{afile}", says="is a file", id="run_home_is_a_file", WORKBENCH_HOME="{afile}"),
    cli(
        "describe",
        "x",
        value="/sys/kernel/wb",
        says="virtual filesystem",
        id="home_in_sys",
        WORKBENCH_HOME="/sys/kernel/wb",
    ),
    cli("ls", value="cloud", says="invalid setting backend", id="env_backend", WORKBENCH_BACKEND="cloud"),
    cli("ls", value="soon", says="kill_grace", id="env_kill_grace", WORKBENCH_KILL_GRACE="soon"),
    cli("ls", value="0", says="poll_interval", id="env_poll_interval", WORKBENCH_POLL_INTERVAL="0"),
    cli("ls", value="99", says="retries", id="env_k8s_retries", WORKBENCH_KUBERNETES__RETRIES="99"),
    configured(
        "backend: [", value="config.yaml", says="cannot read the config file", id="config_broken_yaml"
    ),
    configured("- backend\n- local\n", value="config.yaml", says="mapping", id="config_a_list"),
    configured("bogus: 1\n", value="bogus", says="invalid setting", id="config_unknown_key"),
    configured("backend: cloud\n", value="cloud", says="invalid setting", id="config_bad_backend"),
    configured(
        "profiles:\n  p:\n    bogus: 1\n", value="bogus", says="invalid setting", id="config_bad_profile"
    ),
    configured(
        "profiles:\n  p:\n    resources: {gpus: -1}\n", value="-1", says="negative", id="config_profile_gpus"
    ),
    CliCase(
        "config_home_is_a_file", ("ls",), "{afile}", "is a file", {"WORKBENCH_HOME": ""}, "home: {afile}\n"
    ),
]


@dataclass(frozen=True)
class ApiCase:
    """A call on a :class:`~workbench.service.Service` that must raise ``error`` naming ``value``."""

    id: str
    call: Callable[[Service], Any]
    value: str
    says: str = ""
    error: str = "SpecError"


def _threading_lock() -> Any:
    import threading

    return threading.Lock()


API_ONLY: list[ApiCase] = [
    ApiCase("launch_text", lambda s: s.launch("x"), "'x'", "must be a mapping"),  # type: ignore[arg-type]
    ApiCase("launch_none", lambda s: s.launch(None), "None", "must be a mapping"),  # type: ignore[arg-type]
    ApiCase("launch_list", lambda s: s.launch(["kind", "pod"]), "list", "must be a mapping"),  # type: ignore[arg-type]
    ApiCase("launch_int", lambda s: s.launch(5), "int", "must be a mapping"),  # type: ignore[arg-type]
    ApiCase("launch_bytes", lambda s: s.launch(b"kind: pod"), "bytes", "must be a mapping"),  # type: ignore[arg-type]
    ApiCase("launch_empty", lambda s: s.launch({}), "None", "unknown kind"),
    ApiCase("launch_kind_vm", lambda s: s.launch({"kind": "vm"}), "vm", "unknown kind"),
    ApiCase("launch_kind_int", lambda s: s.launch({"kind": 3}), "3", "unknown kind"),
    ApiCase("launch_no_code", lambda s: s.launch({"kind": "pod"}), "code", "exactly one of code"),
    ApiCase(
        "launch_code_and_script",
        lambda s: s.launch({"kind": "pod", "code": "1", "script": "ok.py"}),
        "script",
        "exactly one of code",
    ),
    ApiCase("launch_code_int", lambda s: s.launch({"kind": "pod", "code": 5}), "5", "string"),
    ApiCase(
        "launch_extra_field",
        lambda s: s.launch({"kind": "pod", "code": "1", "bogus": 1}),
        "bogus",
        "not a field",
    ),
    ApiCase(
        "launch_resources_text",
        lambda s: s.launch({"kind": "pod", "code": "1", "resources": "big"}),
        "big",
        "resources",
    ),
    ApiCase("launch_env_text", lambda s: s.launch({"kind": "pod", "code": "1", "env": "A=1"}), "A=1", "env"),
    ApiCase(
        "launch_gpus_bool",
        lambda s: s.launch({"kind": "pod", "code": "1", "resources": {"gpus": True}}),
        "True",
        "number of GPUs",
    ),
    ApiCase(
        "launch_gpus_inf",
        lambda s: s.launch({"kind": "pod", "code": "1", "resources": {"gpus": math.inf}}),
        "inf",
        "whole number",
    ),
    ApiCase(
        "launch_timeout_nan",
        lambda s: s.launch({"kind": "pod", "code": "1", "timeout": math.nan}),
        "nan",
        "positive duration",
    ),
    ApiCase(
        "launch_workers_inf", lambda s: s.launch({"kind": "dask", "workers": math.inf}), "inf", "workers"
    ),
    ApiCase(
        "launch_send_unsent",
        lambda s: s.launch({"kind": "pod", "code": "1", "send": ["absent_var"]}, inputs={}),
        "absent_var",
        "no such variable",
    ),
    ApiCase(
        "launch_send_unpicklable",
        lambda s: s.launch({"kind": "pod", "code": "1", "send": "lk"}, inputs={"lk": _threading_lock()}),
        "lk",
        "cannot be pickled",
    ),
    ApiCase(
        "launch_param_inf",
        lambda s: s.launch({"kind": "notebook", "notebook": NOTEBOOK, "parameters": {"lr": math.inf}}),
        "lr",
        "not a finite number",
    ),
    ApiCase(
        "launch_param_nan",
        lambda s: s.launch({"kind": "notebook", "notebook": NOTEBOOK, "parameters": {"lr": math.nan}}),
        "lr",
        "not a finite number",
    ),
    ApiCase(
        "launch_param_nested_inf",
        lambda s: s.launch(
            {"kind": "notebook", "notebook": NOTEBOOK, "parameters": {"xs": [1.0, -math.inf]}}
        ),
        "xs",
        "not a finite number",
    ),
    ApiCase(
        "launch_profile_unknown",
        lambda s: s.launch({"kind": "pod", "code": "1", "profile": "nope"}),
        "nope",
        "unknown profile",
    ),
    ApiCase("resolve_text", lambda s: s.resolve("kind: pod"), "kind: pod", "must be a mapping"),  # type: ignore[arg-type]
    ApiCase("dry_run_text", lambda s: s.dry_run("x"), "'x'", "must be a mapping"),  # type: ignore[arg-type]
    ApiCase("dry_run_none", lambda s: s.dry_run(None), "None", "must be a mapping"),  # type: ignore[arg-type]
    ApiCase(
        "dry_run_bad_memory",
        lambda s: s.dry_run({"kind": "pod", "code": "1", "resources": {"memory": "-1Gi"}}),
        "-1Gi",
        "more than zero",
    ),
    ApiCase("sweep_text", lambda s: s.sweep("x", {"lr": [1]}), "'x'", "must be a mapping"),  # type: ignore[arg-type]
    ApiCase(
        "sweep_parallel_zero",
        lambda s: s.sweep({"kind": "notebook", "notebook": NOTEBOOK}, {"lr": [1, 2]}, parallel=-1),
        "-1",
        "at least 1",
    ),
    ApiCase(
        "sweep_bad_value",
        lambda s: s.sweep({"kind": "notebook", "notebook": NOTEBOOK}, {"lr": [0.1, "fast"]}),
        "fast",
        "declared float",
    ),
    ApiCase("scale_too_many", lambda s: s.scale("x", 100000), "100000", "from 0 to 1000"),
    ApiCase("scale_negative", lambda s: s.scale("x", -1), "-1", "from 0 to 1000"),
    ApiCase("scale_bool", lambda s: s.scale("x", True), "True", "whole number"),
    ApiCase("scale_fraction", lambda s: s.scale("x", 1.5), "1.5", "whole number"),  # type: ignore[arg-type]
    ApiCase("scale_text", lambda s: s.scale("x", "two"), "two", "whole number"),  # type: ignore[arg-type]
    ApiCase("adapt_order", lambda s: s.adapt("x", 5, 1), "5:1", "MIN above MAX"),
    ApiCase("adapt_too_many", lambda s: s.adapt("x", 1, 100000), "100000", "less than or equal to 1000"),
    ApiCase("adapt_negative", lambda s: s.adapt("x", -1, 4), "-1", "greater than or equal to 0"),
    ApiCase("get_unknown", lambda s: s.get("nope"), "nope", "no workload named", "NotFound"),
    ApiCase("logs_unknown", lambda s: s.logs("nope"), "nope", "no workload named", "NotFound"),
    ApiCase("wait_unknown", lambda s: s.wait("nope", timeout=1), "nope", "no workload named", "NotFound"),
    ApiCase("cancel_unknown", lambda s: s.cancel("nope"), "nope", "no workload named", "NotFound"),
    ApiCase("delete_unknown", lambda s: s.delete("nope"), "nope", "no workload named", "NotFound"),
    ApiCase("results_unknown", lambda s: s.results("nope"), "nope", "no workload named", "NotFound"),
    ApiCase("verify_unknown", lambda s: s.verify("nope"), "nope", "no workload named", "NotFound"),
    ApiCase("export_unknown", lambda s: s.export("nope"), "nope", "no workload named", "NotFound"),
    ApiCase(
        "dask_address_unknown", lambda s: s.dask_address("nope"), "nope", "no workload named", "NotFound"
    ),
    ApiCase("scale_unknown", lambda s: s.scale("nope", 2), "nope", "no workload named", "NotFound"),
]


@dataclass(frozen=True)
class SettingsCase:
    """``load_settings(**fields)`` that must raise a SpecError naming ``value``."""

    id: str
    fields: dict[str, Any]
    value: str
    says: str = ""


SETTINGS_ONLY: list[SettingsCase] = [
    SettingsCase("home_file", {"home": "{afile}"}, "{afile}", "is a file"),
    SettingsCase("home_under_file", {"home": "{afile}/x"}, "{afile}/x", "is under"),
    SettingsCase("home_proc", {"home": "/proc/x"}, "/proc/x", "virtual filesystem"),
    SettingsCase("backend", {"backend": "cloud"}, "cloud", "invalid setting backend"),
    SettingsCase("kill_grace", {"kill_grace": "-1"}, "-1", "positive duration"),
    SettingsCase("poll_interval", {"poll_interval": 0}, "0", "poll_interval"),
    SettingsCase("profile_extra", {"profiles": {"p": {"bogus": 1}}}, "bogus", "invalid setting"),
    SettingsCase(
        "profile_memory", {"profiles": {"p": {"resources": {"memory": "-1Gi"}}}}, "-1Gi", "more than zero"
    ),
]


@dataclass(frozen=True)
class MagicCase:
    """A cell that must fail with one line (no traceback) naming ``value``."""

    id: str
    code: str
    value: str
    says: str = ""


MAGIC_ONLY: list[MagicCase] = [
    MagicCase("pod_unclosed_quote", "%%pod --name 'x\nprint(1)", "--name 'x", "no closing quotation"),
    MagicCase("train_unclosed_quote", '%%train --env "A=1\nprint(1)', '--env "A=1', "no closing quotation"),
    MagicCase("dask_unclosed_quote", "client = %dask --name 'x", "--name 'x", "no closing quotation"),
    MagicCase("batch_unclosed_quote", "%batch 'nb.ipynb", "'nb.ipynb", "no closing quotation"),
    MagicCase("wb_unclosed_quote", "%wb logs 'x", "logs 'x", "no closing quotation"),
    MagicCase("wb_trailing_escape", "%wb logs x\\", "logs x\\", "no escaped character"),
    MagicCase("wb_unknown_command", "%wb bogus", "bogus", "unknown %wb command"),
    MagicCase("wb_unknown_command_with_name", "%wb frobnicate x", "frobnicate", "unknown %wb command"),
    MagicCase("wb_logs_without_name", "%wb logs", "logs", "needs a workload name"),
    MagicCase("wb_logs_unknown", "%wb logs nope", "nope", "no workload named"),
    MagicCase("wb_describe_unknown", "%wb describe nope", "nope", "no workload named"),
    MagicCase("wb_cancel_unknown", "%wb cancel nope", "nope", "no workload named"),
    MagicCase("wb_rm_unknown", "%wb rm nope --force", "nope", "no workload named"),
    MagicCase("wb_get_unknown", "%wb get nope", "nope", "no workload named"),
    MagicCase("wb_scale_too_many", "%wb scale x 100000", "100000", "from 0 to 1000"),
    MagicCase("wb_scale_words", "%wb scale x two", "two", "whole number"),
    MagicCase("wb_scale_negative", "%wb scale x -1", "-1", "from 0 to 1000"),
    MagicCase("wb_scale_without_number", "%wb scale x", "scale", "needs NAME and a number"),
    MagicCase("wb_adapt_order", "%wb adapt x 5:1", "5:1", "MIN above MAX"),
    MagicCase("wb_adapt_too_many", "%wb adapt x 1:100000", "1:100000", "at most 1000"),
    MagicCase("wb_adapt_without_range", "%wb adapt x", "adapt", "needs NAME and MIN:MAX"),
    MagicCase(
        "pod_send_second_missing", "%%pod --send sent_a,absent_b\nprint(1)", "absent_b", "no such variable"
    ),
    MagicCase(
        "train_send_second_missing",
        "%%train --send sent_a,absent_c\nprint(1)",
        "absent_c",
        "no such variable",
    ),
    MagicCase("pod_send_unpicklable", "%%pod --send lock\nprint(1)", "lock", "cannot be pickled"),
    MagicCase("pod_unknown_flag", "%%pod --detach --bogus\nprint(1)", "--bogus", "unrecognized"),
    MagicCase("pod_flag_without_value", "%%pod --memory\nprint(1)", "--memory", "expected one argument"),
    MagicCase("batch_without_notebook", "%batch", "NB.ipynb", "required"),
    MagicCase("batch_param_one_word", "%batch nb.ipynb -p lr", "-p", "expected 2 arguments"),
    MagicCase("dask_unknown_flag", "client = %dask --bogus", "--bogus", "unrecognized"),
]


@dataclass(frozen=True)
class RestCase:
    """A request that must be answered ``status`` (4xx) with a JSON error naming ``value``."""

    id: str
    method: str
    path: tuple[str, ...]
    value: str
    says: str = ""
    status: int = 400
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)


POD = {"kind": "pod", "code": CELL}
REST_ONLY: list[RestCase] = [
    RestCase("body_empty", "POST", ("workloads",), "empty", "send a JSON object", body=""),
    RestCase("body_not_json", "POST", ("workloads",), "{", "not valid JSON", body="{"),
    RestCase("body_array", "POST", ("workloads",), "list", "JSON object", body="[1]"),
    RestCase("body_string", "POST", ("workloads",), "str", "JSON object", body='"pod"'),
    RestCase(
        "body_nan",
        "POST",
        ("workloads",),
        "NaN",
        "not JSON",
        body='{"kind": "pod", "code": "1", "timeout": NaN}',
    ),
    RestCase(
        "body_number_1e400",
        "POST",
        ("workloads",),
        "lr",
        "not a finite number",
        body='{"kind": "notebook", "notebook": "nb.ipynb", "parameters": {"lr": 1e400}}',
    ),
    RestCase("kind_missing", "POST", ("workloads",), "None", "unknown kind", body={"code": "1"}),
    RestCase("kind_unknown", "POST", ("workloads",), "vm", "unknown kind", body={"kind": "vm"}),
    RestCase("field_unknown", "POST", ("workloads",), "bogus", "not a field", body={**POD, "bogus": 1}),
    RestCase("code_number", "POST", ("workloads",), "5", "string", body={"kind": "pod", "code": 5}),
    RestCase(
        "code_and_script", "POST", ("workloads",), "script", "exactly one", body={**POD, "script": "ok.py"}
    ),
    RestCase("no_code", "POST", ("workloads",), "code", "exactly one", body={"kind": "pod"}),
    RestCase(
        "gpus_bool",
        "POST",
        ("workloads",),
        "True",
        "number of GPUs",
        body={**POD, "resources": {"gpus": True}},
    ),
    RestCase(
        "notebook_outside_root",
        "POST",
        ("workloads",),
        "../nb.ipynb",
        "outside",
        403,
        body={"kind": "notebook", "notebook": "../nb.ipynb"},
    ),
    RestCase(
        "output_odd_form",
        "POST",
        ("workloads",),
        "file:/x",
        "neither",
        body={"kind": "notebook", "notebook": "nb.ipynb", "output": "file:/x"},
    ),
    RestCase(
        "scale_too_many",
        "POST",
        ("workloads", "x", "scale"),
        "100000",
        "from 0 to 1000",
        body={"workers": 100000},
    ),
    RestCase(
        "scale_negative", "POST", ("workloads", "x", "scale"), "-1", "from 0 to 1000", body={"workers": -1}
    ),
    RestCase("scale_text", "POST", ("workloads", "x", "scale"), "'4'", "whole number", body={"workers": "4"}),
    RestCase(
        "scale_bool", "POST", ("workloads", "x", "scale"), "True", "whole number", body={"workers": True}
    ),
    RestCase(
        "scale_fraction", "POST", ("workloads", "x", "scale"), "1.5", "whole number", body={"workers": 1.5}
    ),
    RestCase(
        "adapt_order", "POST", ("workloads", "x", "scale"), "5:1", "MIN above MAX", body={"adapt": "5:1"}
    ),
    RestCase(
        "adapt_too_many",
        "POST",
        ("workloads", "x", "scale"),
        "1:100000",
        "less than or equal to 1000",
        body={"adapt": "1:100000"},
    ),
    RestCase("scale_nothing", "POST", ("workloads", "x", "scale"), "nothing", "either", body={}),
    RestCase(
        "scale_both",
        "POST",
        ("workloads", "x", "scale"),
        "workers,adapt",
        "either",
        body={"workers": 1, "adapt": "1:2"},
    ),
    RestCase(
        "scale_unknown",
        "POST",
        ("workloads", "nope", "scale"),
        "nope",
        "no workload named",
        404,
        body={"workers": 2},
    ),
    RestCase("list_kind", "GET", ("workloads",), "vm", "unknown kind", params={"kind": "vm"}),
    RestCase(
        "list_status", "GET", ("workloads",), "gone", "unknown status", params={"status": "running,gone"}
    ),
    RestCase("get_unknown", "GET", ("workloads", "nope"), "nope", "no workload named", 404),
    RestCase("delete_unknown", "DELETE", ("workloads", "nope"), "nope", "no workload named", 404),
    RestCase(
        "delete_force_maybe",
        "DELETE",
        ("workloads", "x"),
        "maybe",
        "true or false",
        params={"force": "maybe"},
    ),
    RestCase("cancel_unknown", "POST", ("workloads", "nope", "cancel"), "nope", "no workload named", 404),
    RestCase("logs_unknown", "GET", ("workloads", "nope", "logs"), "nope", "no workload named", 404),
    RestCase(
        "logs_follow_maybe",
        "GET",
        ("workloads", "x", "logs"),
        "maybe",
        "true or false",
        params={"follow": "maybe"},
    ),
    RestCase("schema_unknown", "GET", ("schemas", "vm"), "vm", "", 404),
]


def fill(text: str, places: dict[str, str]) -> str:
    """``text`` with ``{afile}`` and the like replaced by the workspace's paths."""
    for key, path in places.items():
        text = text.replace("{" + key + "}", path)
    return text

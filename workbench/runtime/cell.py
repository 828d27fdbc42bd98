"""Runs a cell body or a script inside a workload's process.

``python -m workbench.runtime.cell RUN_DIR [--payload DIR] [--results-to-log]`` reads
``meta.json`` from the payload folder (default ``RUN_DIR/payload``; on Kubernetes the mounted
ConfigMap): the entry file, its arguments, and the names to bring back. Variables sent from
the kernel (``inputs.pkl``, cloudpickle) are placed in the namespace first; after success the
requested names are pickled, sealed with the launch's key (:mod:`.results`, taken out of the
environment before the code starts) and written to ``RUN_DIR/results.sealed`` or, with
``--results-to-log`` (a pod, whose disk goes away with it), printed as one final marked line
that the backend takes out of the logs. The traceback of a failure is trimmed to the user's
own frames.

When the code ends (rank 0 of a training job), what it wrote to ``WORKBENCH_OUTPUT_DIR`` is
published to ``WORKBENCH_OUTPUT_LOCATION`` if that is set (``--output``; :mod:`.publish`).
A failure the runner itself knows the reason of (a missing ``--get`` value, outputs that
could not be published) is also written, in one line, to ``WORKBENCH_TERMINATION_LOG``: on
Kubernetes the container's termination message, which reaches the workload's status even
where torchrun turns the runner's exit code into its own.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import time

from . import OUTPUT_LOCATION_ENV, gate
from . import results as sealed

# Every pod starts here, so this module imports only what each run uses: no ``typing``,
# ``contextlib``, ``traceback``, ``pathlib`` or ``runpy`` (~20 ms of start-up together); the rest is imported
# where needed. A local pod starts it with ``python -c`` (:data:`START`), which spares the
# interpreter ``-m``'s own runpy machinery (~7 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

#: The interpreter's arguments that start this runner without ``-m`` (then RUN_DIR and options).
START = ("-c", "from workbench.runtime.cell import entry; entry()")
_NAMESPACES: list[dict[str, Any]] = []  # the code's globals, dropped before a hard exit
#: Exit code when a ``--get`` name is missing or cannot be pickled (Kubernetes: fail the Job at once).
MISSING_RESULT_EXIT = 3
#: the container's termination message file (Kubernetes), where the runner says why it failed
TERMINATION_ENV = "WORKBENCH_TERMINATION_LOG"
#: How a rank's error reads when it failed only because a peer went away first (gloo's TCP
#: pair errors included: a peer that died before the connection was made is "timed out
#: connecting: ... Connection refused"); matched without regard to case.
LOST_PEER = (
    r"Connection (reset|closed) by peer|Broken pipe|remote (process|peer) .*(exit|clos)"
    r"|gloo/transport/tcp/pair\.cc"
)
#: Seconds such a rank waits before it leaves, so that a rank that failed on its own ends (its
#: node first: a Kubernetes Job fails on the first node to end, and stops the others).
LOST_PEER_LINGER = 3.0


def _say_why(reason: str, *, start: bool = False) -> None:
    """Write ``reason`` (one line) to the termination message file, if there is one; with
    ``start``, empty it (an earlier attempt's reason must not outlive a restart)."""
    path = os.environ.get(TERMINATION_ENV)
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("" if start else reason.strip().splitlines()[0][:1000] + "\n")
    except OSError:
        pass


def _publish(main_rank: bool, *, failed: bool) -> str | None:
    """Rank 0 publishes the outputs (:func:`.publish.publish_outputs`); what went wrong, said
    at once when the code ``failed`` already (its exit code stands)."""
    if not main_rank or not os.environ.get(OUTPUT_LOCATION_ENV):
        return None
    from .publish import publish_outputs

    sys.stdout.flush()
    problem = publish_outputs()
    if problem and failed:
        print(f"workbench: {problem}", file=sys.stderr)
    return problem


def _fail(message: str, code: int) -> int:
    """Say ``message`` on stderr (prefixed) and in the termination message; ``code``."""
    print(f"workbench: {message}", file=sys.stderr)
    _say_why(message)
    return code


def _user_traceback(exc: BaseException, entry: str, shown: str) -> str:
    """Write the traceback of the user's code, from its first frame in ``entry`` on.

    A script that cannot be compiled (a syntax error, a binary file) has no frame of its own:
    it gets what ``python script.py`` prints, the file as the user named it (``shown``), the
    line and a caret, and the error; never this runner's or runpy's frames.
    """
    import traceback

    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != entry:
        tb = tb.tb_next
    if tb is not None or not isinstance(exc, (SyntaxError, ValueError)):
        text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    else:
        if isinstance(exc, SyntaxError) and exc.filename in (entry, None):
            exc.filename = shown  # a binary file's error names no file (null bytes)
            if exc.lineno is None:
                text = f'  File "{shown}"\n{type(exc).__name__}: {exc.msg}\n'
                sys.stderr.write(text)
                return text
        text = "".join(traceback.format_exception_only(type(exc), exc))
    sys.stderr.write(text)
    return text


class _RankPrefix:
    """Writes every line of a rank's output with ``[rank R] `` in front (distributed training)."""

    def __init__(self, stream: Any, prefix: str) -> None:
        self._stream = stream
        self._prefix = prefix
        self._pending = ""

    def write(self, text: str) -> int:
        # whole lines in one write each, so ranks sharing a log never interleave mid-line
        self._pending += text
        if "\n" in self._pending:
            done, _, self._pending = self._pending.rpartition("\n")
            self._stream.write("".join(f"{self._prefix}{line}\n" for line in done.split("\n")))
            self._stream.flush()
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._stream.write(f"{self._prefix}{self._pending}")
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _leave_process_group() -> None:
    """Tear down torch.distributed's process group if the code made one.

    A process that exits with a live gloo/nccl group can abort in C++ at interpreter exit
    ("terminate called without an active exception"), turning a success into SIGABRT.
    """
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            dist.barrier()  # no rank tears its connections down while a peer still uses them
            dist.destroy_process_group()
    except Exception:  # noqa: S110 - best effort at exit; the code's own outcome stands
        pass


def _record_rank_failure(text: str) -> None:
    """Keep a failing rank's traceback, so the job's status can name the rank that failed first."""
    folder = os.environ.get("WORKBENCH_ERROR_DIR")
    if not folder:
        return
    rank = os.environ.get("RANK", "0")
    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    record = {"rank": int(rank), "attempt": attempt, "time": time.time(), "traceback": text}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"rank-{rank}.json"), "w") as fh:
        fh.write(json.dumps(record))


def _linger_if_a_peer_went_first(exc: BaseException) -> None:
    """A rank of a distributed run whose error says a peer went away waits a moment before it
    exits: the rank that failed on its own then ends first, and is the one the status names."""
    if os.environ.get("WORLD_SIZE", "1") == "1":
        return
    import re

    if re.search(LOST_PEER, f"{type(exc).__name__}: {exc}", re.I):
        sys.stderr.flush()
        time.sleep(LOST_PEER_LINGER)


def _stop(signum: int, _frame: object) -> None:
    # In a container this runner is process 1, which ignores SIGTERM unless it handles it:
    # turn it into SystemExit so `finally` blocks run and a cancel does not wait for SIGKILL.
    raise SystemExit(128 + signum)


def run_file(path: str, init_globals: dict[str, Any]) -> dict[str, Any]:
    """Run the file at ``path`` as ``__main__`` with ``init_globals``; its globals.

    What ``runpy.run_path`` does for a source file, without the import machinery it loads
    (pkgutil, importlib.util): while the code runs, a fresh ``__main__`` module in
    ``sys.modules`` and ``sys.argv[0]`` the file; the file compiled as the interpreter compiles
    a script (its coding line honoured).
    """
    module = type(sys)("__main__")
    namespace = module.__dict__
    namespace.update(init_globals)
    namespace.update(__file__=path, __cached__=None, __loader__=None, __package__="", __spec__=None)
    with open(path, "rb") as fh:
        code = compile(fh.read(), path, "exec", dont_inherit=True)
    saved, argv0 = sys.modules.get("__main__"), sys.argv[0]
    sys.modules["__main__"], sys.argv[0] = module, path
    try:
        exec(code, namespace)  # noqa: S102 - the workload's own code, run as its script
    finally:
        sys.argv[0] = argv0
        if saved is not None:
            sys.modules["__main__"] = saved
    return namespace


def load_inputs(payload: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``--send`` values in ``payload/inputs.pkl`` (none when it is absent): the one place a
    workload unpickles what it was sent."""
    inputs_path = os.path.join(payload, "inputs.pkl")
    if not os.path.exists(inputs_path):
        return {}
    with open(inputs_path, "rb") as fh:
        # written by the user who launched this workload (0600 in a 0700 run directory, or the
        # workload's own ConfigMap); imports cloudpickle only when needed
        inputs: dict[str, Any] = pickle.load(fh)  # noqa: S301
    return inputs


def run(run_dir: str, payload: str | None = None, *, results_to_log: bool = False) -> int:
    key = sealed.take_key()  # before any user code: neither it nor its children see the key
    if "TORCHELASTIC_RESTART_COUNT" not in os.environ:  # torchrun's workers keep its own signal handling
        signal.signal(signal.SIGTERM, _stop)
    payload = payload or os.path.join(run_dir, "payload")
    with open(os.path.join(payload, "meta.json"), encoding="utf-8") as fh:
        meta: dict[str, Any] = json.load(fh)
    entry = os.path.join(payload, meta["entry"])
    gate.wait()  # in its cgroup from here on (a local pod): unpickling the inputs may run code
    inputs = load_inputs(payload)
    sys.argv = [meta.get("argv0") or entry, *meta.get("args", [])]
    rank = os.environ.get("RANK")
    main_rank = rank in (None, "0")  # global rank 0: its outputs are published, its results come back
    if main_rank:
        _say_why("", start=True)
    if rank is not None and os.environ.get("WORLD_SIZE", "1") != "1":
        sys.stdout = _RankPrefix(sys.stdout, f"[rank {rank}] ")
        sys.stderr = _RankPrefix(sys.stderr, f"[rank {rank}] ")
    if meta.get("cwd_on_path", True):
        sys.path.insert(0, os.getcwd())
    failed = False
    try:
        namespace = run_file(entry, inputs)
        _NAMESPACES.append(namespace)
    except SystemExit:
        _publish(main_rank, failed=True)  # sys.exit() in the code, or SIGTERM: keep what it wrote
        raise
    except BaseException as exc:
        _record_rank_failure(_user_traceback(exc, entry, sys.argv[0]))
        failed = True
        _linger_if_a_peer_went_first(exc)
    # whatever the code's outcome: what it wrote may be what explains it
    unpublished = _publish(main_rank, failed=failed)
    if failed:
        return 1
    if unpublished:
        return _fail(unpublished, 1)
    _leave_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    wanted: list[str] = meta.get("get", []) if main_rank else []  # results come from rank 0
    missing = [name for name in wanted if name not in namespace]
    if missing:
        return _fail(
            f"--get {','.join(missing)}: not defined when the code finished; "
            "assign it in the cell or drop it from --get",
            MISSING_RESULT_EXIT,
        )
    if not wanted:
        return 0
    if key is None:
        print(
            f"workbench: --get {','.join(wanted)} not sent back: this run has no results key "
            "(it was not launched by workbench); write the values to WORKBENCH_OUTPUT_DIR instead",
            file=sys.stderr,
        )
        return 0
    results = {name: namespace[name] for name in wanted}
    try:
        try:
            blob = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError):
            import cloudpickle  # lambdas, classes defined in the cell

            blob = cloudpickle.dumps(results)
    except Exception as exc:
        return _fail(f"cannot bring back {','.join(wanted)}: {exc!r}", MISSING_RESULT_EXIT)
    if results_to_log:
        out = sys.__stdout__ or sys.stdout  # not through a rank prefix: the line must start with the marker
        sys.stdout.flush()
        out.write(sealed.seal_line(blob, key))
        out.flush()
        return 0
    os.makedirs(run_dir, exist_ok=True)
    tmp = os.path.join(run_dir, sealed.FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(sealed.seal(blob, key))
    os.replace(tmp, os.path.join(run_dir, sealed.FILE))
    return 0


def main(argv: list[str]) -> int:
    run_dir, payload, to_log = argv[0], None, False
    rest = argv[1:]
    while rest:
        option = rest.pop(0)
        if option == "--payload" and rest:
            payload = rest.pop(0)
        elif option == "--results-to-log":
            to_log = True
        else:
            print(f"workbench.runtime.cell: unknown argument {option!r}", file=sys.stderr)
            return 2
    return run(run_dir, payload, results_to_log=to_log)


def _exit(code: int) -> None:
    if "torch.distributed" in sys.modules:
        # gloo/nccl threads can hang or abort ("terminate called without an active exception")
        # the interpreter's teardown, even after destroy_process_group: a success would turn
        # into SIGABRT and a failed rank would stall torchrun's restart. Leave at once, after
        # what teardown would have saved: the code's objects (open files close as they go)
        # and the logging handlers.
        import contextlib
        import gc
        import io
        import logging

        for namespace in _NAMESPACES:
            for value in namespace.values():
                if isinstance(value, io.IOBase) and not value.closed:
                    with contextlib.suppress(OSError, ValueError):
                        value.flush()
        _NAMESPACES.clear()
        gc.collect()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def outcome(argv: list[str]) -> int:
    """Run with ``argv``; the exit status, also when the code left by ``sys.exit()`` or SIGTERM."""
    try:
        return main(argv)
    except SystemExit as stop:  # sys.exit() in the code, or SIGTERM (see _stop)
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)


def entry() -> None:
    """Run with this process's arguments and leave with the code's exit status."""
    _exit(outcome(sys.argv[1:]))


if __name__ == "__main__":
    entry()

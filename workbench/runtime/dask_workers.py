"""Where a local Dask cluster's workers come from: a warm server that forks them.

By default distributed's nannies spawn each worker as a fresh interpreter that imports
distributed (about 0.6 s on these machines). Instead they fork their workers from
multiprocessing's ``forkserver``, with distributed already imported, in one of two ways:

- **Forked from the cluster process** (the usual way). The cluster process was started in the
  environment a spawned worker would get: the backend adds distributed's default
  ``pre-spawn-environ`` to its launch (:func:`start_environ`; ``MALLOC_TRIM_THRESHOLD_`` and
  ``PYTHONHASHSEED`` only act when an interpreter starts, the BLAS thread counts when numpy
  loads) and names what it added in :data:`DEFAULTED`; those are removed again once numpy has
  loaded, so the nannies and the Dask config see the user's own environment. Once distributed
  is imported, and while the process still has a single thread, the server is a fork of it:
  distributed is imported once, not twice side by side on the same cores.
- **A fresh server** started before the cluster process imports distributed, in the
  environment distributed's own defaults give (it imports distributed while this process
  does). This is the way when the process did not start in the workers' environment (a Dask
  config that changes ``pre-spawn-environ``, ``PYTHONHASHSEED=0``), when it has a thread to
  lose (numpy's BLAS pool with ``OPENBLAS_NUM_THREADS`` above 1), or when multiprocessing's
  forkserver is not the one this module knows (another Python version).

A Dask config that names a ``multiprocessing-method`` is followed as it is: no server.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The variable that names what the backend added to a cluster's launch (comma-separated).
DEFAULTED = "WORKBENCH_DASK_DEFAULTED"
#: Dask's own value for workers' ``PYTHONHASHSEED`` when none is configured (distributed.nanny):
#: every worker of a cluster must hash alike.
_DASK_HASH_SEED = "6640"
_PRE_SPAWN = "distributed.nanny.pre-spawn-environ"
_METHOD = "distributed.worker.multiprocessing-method"
#: BLAS thread counts: above 1, numpy's BLAS starts threads as it loads, and a fork keeps one.
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
#: The state of multiprocessing's ``ForkServer`` (CPython 3.11's) that a forked server
#: sets as ``ensure_running`` would; any other shape starts a fresh server instead.
_SERVER_STATE = frozenset(
    {
        "_forkserver_address",
        "_forkserver_alive_fd",
        "_forkserver_pid",
        "_inherited_fds",
        "_lock",
        "_preload_modules",
    }
)
#: What :func:`start` returns when the server is to be forked once distributed is imported.
FORK = "fork"


def worker_environ(wanted: Mapping[str, Any], own: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a nanny gives a worker it spawns, from the configured ``pre-spawn-environ``
    (as ``distributed.nanny`` reads it: the process's ``own`` values win; Dask's hash seed)."""
    own = os.environ if own is None else own
    environ = {k: own.get(k, str(v)) for k, v in wanted.items() if v is not None}
    if environ.get("PYTHONHASHSEED") in (None, "0"):
        environ["PYTHONHASHSEED"] = _DASK_HASH_SEED
    return environ


def package_defaults() -> dict[str, Any] | None:
    """distributed's default ``pre-spawn-environ``, read from its package without importing it."""
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("distributed")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = Path(spec.submodule_search_locations[0], "distributed.yaml").read_text()
        safe = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, when built with it
        defaults = yaml.load(text, Loader=safe)  # noqa: S506 - a safe loader
        return dict(defaults["distributed"]["nanny"]["pre-spawn-environ"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def start_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """What to add to a cluster process's launch, whose environment will be ``environ``, so it
    starts as a spawned worker would: the defaults it does not set, and :data:`DEFAULTED`."""
    defaults = package_defaults()
    if defaults is None:
        return {}
    added = {k: v for k, v in worker_environ(defaults, {}).items() if k not in environ}
    return {**added, DEFAULTED: ",".join(sorted(added))} if added else {}


def _drop_defaults(started: Mapping[str, str]) -> None:
    """Remove from ``os.environ`` what the backend added for the interpreter's start
    (:func:`start_environ`), once numpy has loaded: the nannies and the Dask config then see
    the user's own environment."""
    for name in [*started.get(DEFAULTED, "").split(","), DEFAULTED]:
        if name:
            os.environ.pop(name, None)


def _forkable() -> bool:
    """Whether the server could be a fork of this process (checked again once it may be)."""
    import multiprocessing.forkserver

    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    blas = next((os.environ[name] for name in _BLAS_THREADS if name in os.environ), "1")
    return server is not None and set(vars(server)) == _SERVER_STATE and blas == "1"


def _spawn(environ: dict[str, str]) -> bool:
    """Start multiprocessing's forkserver, distributed preloaded, as a fresh interpreter in
    ``environ`` (this process's own environment is left as it was)."""
    import multiprocessing
    import multiprocessing.forkserver

    saved = dict(os.environ)
    os.environ.update(environ)
    try:
        multiprocessing.get_context("forkserver").set_forkserver_preload(["distributed"])
        multiprocessing.forkserver.ensure_running()
    except OSError:
        return False
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return True


def _warm() -> None:
    """What every worker would otherwise do for itself as it starts, done once in the server: the
    package versions a worker registers with (read from package metadata) and the metrics
    library. Not numpy.random: its global generator is seeded as it loads, once per worker."""
    import distributed.versions

    with contextlib.suppress(ImportError):
        import prometheus_client  # noqa: F401
    with contextlib.suppress(Exception):  # a worker reads them again, and says what went wrong
        distributed.versions.get_versions()


def _fork() -> bool:
    """Start multiprocessing's forkserver as a fork of this process, which has imported
    distributed and has one thread; it serves as one started by ``ensure_running`` would."""
    import multiprocessing.forkserver
    import socket
    import threading
    from multiprocessing import connection, resource_tracker

    server: Any = multiprocessing.forkserver._forkserver
    if set(vars(server)) != _SERVER_STATE or server._forkserver_pid is not None:
        return False
    resource_tracker.ensure_running()  # what ensure_running starts first (the workers get its fd)
    if len(os.listdir("/proc/self/task")) != 1:  # a thread (numpy's BLAS pool) would not follow
        return False
    sys.stdout.flush()
    sys.stderr.flush()  # nothing buffered here is written again by the server's children
    with server._lock, socket.socket(socket.AF_UNIX) as listener:
        address = connection.arbitrary_address("AF_UNIX")  # type: ignore[attr-defined]
        listener.bind(address)
        os.chmod(address, 0o600)
        listener.listen()
        alive_r, alive_w = os.pipe()  # the server leaves when every holder of alive_w has gone
        try:
            pid = os.fork()
        except OSError:
            os.close(alive_r)
            os.close(alive_w)
            return False
        if pid == 0:  # the server: never returns into this process's frames
            code = 1
            try:
                server._lock = threading.Lock()  # held by the parent at the fork
                keep = {0, 1, 2, listener.fileno(), alive_r}
                for fd in map(int, os.listdir("/proc/self/fd")):
                    if fd not in keep:
                        with contextlib.suppress(OSError):
                            os.close(fd)
                _warm()  # while the cluster process starts its scheduler
                multiprocessing.forkserver.main(listener.fileno(), alive_r, [])
                code = 0
            except SystemExit:
                code = 0  # every client has gone
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(alive_r)
        server._forkserver_address = address
        server._forkserver_alive_fd = alive_w
        server._forkserver_pid = pid
    return True


def _started_in(started: Mapping[str, str], environ: Mapping[str, str] | None) -> bool:
    """Whether a process that started with ``started`` began in ``environ``."""
    return environ is not None and all(started.get(k) == v for k, v in environ.items())


def _defaults_environ() -> dict[str, str] | None:
    defaults = package_defaults()
    return worker_environ(defaults) if defaults is not None else None


def start(started: Mapping[str, str]) -> str | dict[str, str] | None:
    """Before distributed is imported: :data:`FORK` when the server can be forked once it is
    (this process, which started with ``started``, began in the workers' environment: the
    backend says so with :data:`DEFAULTED`, :func:`use` checks it), else a fresh server started
    now and the environment it got; None when neither."""
    if _forkable() and (started.get(DEFAULTED) or _started_in(started, _defaults_environ())):
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()  # a small interpreter, started while this one imports
        return FORK
    environ = _defaults_environ()
    return environ if environ is not None and _spawn(environ) else None


def use(early: str | dict[str, str] | None, started: Mapping[str, str]) -> str | None:
    """Have the nannies fork their workers from a server, unless the Dask config chooses a method
    itself; imports distributed. ``early`` is what :func:`start` returned; a server started in
    another environment than the Dask config's is started again. Which server: ``forked``,
    ``fresh`` or None (the nannies spawn each worker, distributed's default)."""
    import multiprocessing.forkserver

    import dask.config
    import distributed.utils
    from distributed import nanny

    _drop_defaults(started)
    user = dask.config.collect(env=os.environ)  # files and DASK_* variables, without the defaults
    method = dask.config.get(_METHOD, None, config=user)
    get_env = getattr(nanny, "_get_env_variables", None)
    wanted = worker_environ(get_env(_PRE_SPAWN)) if get_env is not None else None
    usable = method is None and wanted is not None and hasattr(distributed.utils, "_forkserver_preload_set")
    kind = None
    if usable and early == FORK and _started_in(started, wanted) and _fork():
        kind = "forked"
    elif isinstance(early, dict) and (not usable or wanted != early):
        stop = getattr(getattr(multiprocessing.forkserver, "_forkserver", None), "_stop", None)
        if stop is None:
            return None  # cannot be replaced: the nannies spawn (distributed's default)
        stop()
    elif isinstance(early, dict):
        kind = "fresh"
    if usable and kind is None and _spawn(wanted or {}):
        kind = "fresh"
    if kind is None:
        return None
    distributed.utils._forkserver_preload_set = True  # preloaded here: not numpy and pandas too
    dask.config.set({_METHOD: "forkserver"})
    return kind

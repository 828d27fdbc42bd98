"""One Service (and one Store) shared by threads, as the Jupyter server and user code share them."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from workbench.errors import Conflict
from workbench.service import Service
from workbench.store import Store, Workload

THREADS = 20


def test_twenty_threads_launch_through_one_service(service: Service) -> None:
    start = threading.Barrier(THREADS)

    def launch(i: int) -> str:
        start.wait(timeout=60)
        return service.launch({"kind": "pod", "name": f"thread-{i}", "code": f"print({i})"}).id

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        names = list(pool.map(launch, range(THREADS)))
        finals = list(pool.map(lambda name: service.wait(name, timeout=240), names))
    assert [w.status for w in finals] == ["succeeded"] * THREADS, [w.message for w in finals]
    assert {w.id: "".join(service.logs(w.id)) for w in finals} == {
        f"thread-{i}": f"{i}\n" for i in range(THREADS)
    }
    assert sorted(w.id for w in service.list()) == sorted(names)


def test_threads_racing_for_one_name_get_one_workload(service: Service) -> None:
    start = threading.Barrier(THREADS)

    def launch(_: int) -> str:
        start.wait(timeout=60)
        try:
            return service.launch({"kind": "pod", "name": "only", "code": "print('once')"}).id
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = Counter(pool.map(launch, range(THREADS)))
    assert outcomes == {"only": 1, "conflict": THREADS - 1}
    assert service.wait("only", timeout=120).status == "succeeded"
    assert "".join(service.logs("only")) == "once\n"
    assert sorted(p.name for p in service.settings.runs_dir.iterdir()) == ["only"]  # no staging left


def test_threads_read_and_write_one_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                name = f"w{n}-{i}"
                store.insert(
                    Workload(
                        id=name, kind="pod", backend="local", status="pending", spec={},
                        run_dir=f"/nowhere/{name}", created=time.time(),
                    )
                )  # fmt: skip
                assert store.update(name, only_if=["pending"], status="running")
                assert store.get(name).status == "running"
                store.list(status=["running"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(store.list(status=["running"])) == THREADS * 25
    store.close()
    assert len(Store(tmp_path / "wb.db").list()) == THREADS * 25

"""B6: a sweep of 12 small notebooks against 12 sequential `papermill` CLI runs.

The same three-cell notebook (a ``parameters`` cell, a computation, an output file) runs with
``x`` = 1..12 both ways, alternating, three times each:
``workbench notebook run small.ipynb --sweep x=1,...,12`` (CLI → inspection → 12 supervised
papermill runs, at most ``--parallel`` at once (default: the number of cores), provenance for
each, the summary table) and ``papermill small.ipynb out-N.ipynb -p x N`` twelve times in a row.
A second line shows the sweep with ``--parallel`` one above the core count: a kernel's start
is mostly waiting, so one more run at a time keeps both cores busy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import _common

ROUNDS = 3
RUNS = 12
CELLS = (
    "x = 1",
    "import os\ny = sum(i * x for i in range(10_000))\nprint(y)",
    "open(os.path.join(os.environ.get('WORKBENCH_OUTPUT_DIR', '.'), f'y-{x}.txt'), 'w').write(str(y))",
)


def write_notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, str(path))


def timed(argvs: list[list[str]], cwd: Path) -> float:
    started = time.perf_counter()
    for argv in argvs:
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
        if result.returncode != 0:
            raise _common.BenchError(
                f"{argv[:4]} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
    return time.perf_counter() - started


def main() -> None:
    bin_dir = Path(sys.executable).parent
    cores = os.cpu_count() or 1
    values = ",".join(str(i) for i in range(1, RUNS + 1))
    with _common.isolated_home("b6") as tmp:
        write_notebook(tmp / "small.ipynb")
        sweep = [str(bin_dir / "workbench"), "notebook", "run", "small.ipynb", "--sweep", f"x={values}"]
        wider = [*sweep, "--parallel", str(cores + 1)]
        papermill = [
            [
                str(bin_dir / "papermill"),
                "--no-progress-bar",
                "small.ipynb",
                f"out-{i}.ipynb",
                "-p",
                "x",
                str(i),
            ]
            for i in range(1, RUNS + 1)
        ]
        timed(papermill[:1], tmp)  # warm the page cache for both
        timed([[*sweep[:4], "--sweep", "x=1"]], tmp)
        ours, ours_wider, base = [], [], []
        for _ in range(ROUNDS):
            ours.append(timed([sweep], tmp))
            base.append(timed(papermill, tmp))
            ours_wider.append(timed([wider], tmp))
    mine, theirs, wide = _common.median(ours), _common.median(base), _common.median(ours_wider)
    ratio = mine / theirs
    print(
        f"B6 sweep of {RUNS} small notebooks on {cores} cores (default --parallel {cores}): "
        f"median {_common.ms(mine)} (baseline: {RUNS} sequential papermill CLI runs {_common.ms(theirs)}); "
        f"ratio {ratio:.2f}x target <= 0.20x: {_common.verdict(ratio, 0.20)}"
    )
    print(
        f"   --parallel {cores + 1}: median {_common.ms(wide)}, ratio {wide / theirs:.2f}x; spread over "
        f"{ROUNDS} rounds: sweep {_common.ms(min(ours))}..{_common.ms(max(ours))}, "
        f"papermill {_common.ms(min(base))}..{_common.ms(max(base))}"
    )


if __name__ == "__main__":
    _common.main_guard(main)

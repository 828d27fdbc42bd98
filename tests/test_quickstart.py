"""The quickstart (`make demo`) uses only names the package has: a rename cannot break the demo unseen.

Running the whole notebook is `make demo`'s job (Dask, torchrun, papermill: minutes); this
checks, in milliseconds, every ``from workbench… import name`` and ``%magic`` it uses.
"""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def code_cells(name: str) -> list[str]:
    notebook = json.loads((NOTEBOOKS / name).read_text())
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def python_of(cell: str) -> str:
    """The cell without its IPython-only lines (magics, shell escapes); a cell magic's body stays."""
    lines = cell.splitlines()
    if lines and lines[0].startswith("%%"):
        return ""  # runs elsewhere (a pod, a training job), not in the kernel
    return "\n".join("" if line.lstrip().startswith(("%", "!")) or "= %" in line else line for line in lines)


def test_every_workbench_name_the_quickstart_imports_exists() -> None:
    imported = []
    for cell in code_cells("quickstart.ipynb"):
        for node in ast.walk(ast.parse(python_of(cell))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workbench"):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
                    imported.append(f"{node.module}.{alias.name}")
    assert "workbench.Service" in imported


def test_every_magic_the_quickstart_uses_is_registered() -> None:
    from workbench.magics import WorkbenchMagics
    from workbench.magics_serve import ServeMagics

    registered = {
        *WorkbenchMagics.magics["line"],
        *WorkbenchMagics.magics["cell"],
        *ServeMagics.magics["line"],
        *ServeMagics.magics["cell"],
    }
    used = set()
    for cell in code_cells("quickstart.ipynb"):
        for line in cell.splitlines():
            word = line.split("=")[-1].strip() if "= %" in line else line.strip()
            if word.startswith("%") and not word.startswith("%load_ext"):
                used.add(word.lstrip("%").split()[0])
    assert used and used <= registered, used - registered

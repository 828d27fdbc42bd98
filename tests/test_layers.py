"""The layering rules of the design, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"
ADAPTERS = {"magics.py", "cli.py", "widgets.py", "options.py", "render.py"}
FRONT_END_LIBS = {"IPython", "ipykernel", "tornado", "click", "ipywidgets", "jupyter_server"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_front_end_imports_below_the_adapters(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    if relative.parts[0] == "server" or str(relative) in ADAPTERS:
        return
    assert imported_roots(path) & FRONT_END_LIBS == set()


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_kubernetes_client_module_imports_kubernetes(path: Path) -> None:
    relative = path.relative_to(PACKAGE).as_posix()
    allowed = relative.startswith("backends/kubernetes/") and not relative.endswith(
        ("manifests.py", "policy.py")
    )
    if not allowed:
        assert "kubernetes" not in imported_roots(path)


def test_runtime_imports_only_the_core() -> None:
    core = {"store", "errors", "private", "runtime"}
    for path in (PACKAGE / "runtime").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                target = (node.module or "").split(".")[0]
                if node.level == 2:
                    assert target in core, f"{path.name} imports workbench.{target}"


def test_modules_stay_small() -> None:
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in modules()}
    assert {name: n for name, n in sizes.items() if n > 450} == {}

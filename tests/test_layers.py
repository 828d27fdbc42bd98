"""The layering rules of the design, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"
ADAPTERS = {
    "magics.py",
    "magics_serve.py",
    "widgets_watch.py",
    "widgets_html.py",
    "sweeps.py",
    "cli.py",
    "cli_serve.py",
    "cli_mlflow.py",
    "widgets.py",
    "widgets_mode.py",
    "options.py",
    "render.py",
}
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
    return sorted(p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts)


def imported_modules(path: Path, text: str | None = None) -> set[str]:
    """Every workbench module ``path`` imports, relative imports made absolute, ``from X
    import name`` counted as ``X.name`` too (``from . import runtime`` imports a package)."""
    package = ["workbench", *path.relative_to(PACKAGE).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if text is None else text)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "workbench" or name.startswith("workbench.")}


def adapter(path: Path) -> bool:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] == "server" or str(relative) in ADAPTERS


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


@pytest.mark.parametrize(
    "path", [p for p in modules() if adapter(p)], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_adapters_reach_backends_and_the_runtime_only_through_the_service(path: Path) -> None:
    reached = {
        name
        for name in imported_modules(path)
        if name.startswith(("workbench.backends", "workbench.runtime"))
    }
    assert reached == set(), f"{path.name} imports {sorted(reached)}: call the service instead"


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if p.relative_to(PACKAGE).parts[0] not in ("backends", "runtime")],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_only_backends_import_a_concrete_backend(path: Path) -> None:
    concrete = {
        name
        for name in imported_modules(path)
        if name.startswith(("workbench.backends.local", "workbench.backends.kubernetes"))
    }
    assert concrete == set(), (
        f"{path.name} imports {sorted(concrete)}: ask for an ability through the registry"
    )


def test_the_import_check_sees_absolute_and_relative_imports() -> None:
    # the check itself must see both spellings, or the two tests above prove nothing
    text = (
        "import workbench.backends.local.gpus\n"
        "from ..runtime import procs\n"
        "from workbench.backends.kubernetes import client\n"
    )
    seen = imported_modules(PACKAGE / "server" / "any.py", text)
    assert {
        "workbench.backends.local.gpus",
        "workbench.runtime.procs",
        "workbench.backends.kubernetes.client",
    } <= seen


def test_the_service_never_guesses_abilities_with_hasattr() -> None:
    source = (PACKAGE / "service.py").read_text()
    assert "hasattr(" not in source
    assert "getattr(self._reachable" not in source

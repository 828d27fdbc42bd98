"""The runtime images under images/: linted, non-root, pinned. No container engine is needed.

hadolint (from the dev extra, next to this interpreter) lints every Dockerfile with the
repository's ``.hadolint.yaml``. The rest reads the Dockerfile text: the final stage runs as
the numeric uid/gid the pods ask for, nothing is fetched by ``ADD <url>`` or piped from
curl/wget into a shell, base images carry full version tags, and the requirement files pin
every package with ``==``. Each check is also run on a bad example, so it is known to fail.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from workbench._version import __version__
from workbench.backends.kubernetes.hardening import MIN_UID
from workbench.backends.kubernetes.settings import KubeSettings

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
HADOLINT = Path(sys.executable).parent / "hadolint"
HADOLINT_CONFIG = ROOT / ".hadolint.yaml"
RUNTIME_UID = KubeSettings().runtime_uid  # the pods' runAsUser / runAsGroup / fsGroup
RUNTIME_REQUIREMENTS = IMAGES / "requirements-runtime.txt"
# what workbench.runtime and the workload kinds use inside a pod
RUNTIME_PACKAGES = (
    "cloudpickle",
    "numpy",
    "papermill",
    "ipykernel",
    "nbformat",
    "nbclient",
    "pyyaml",
    "pydantic",
    "pydantic-settings",
    "dask[distributed]",
    "torch",
    "kserve",  # serve replicas
    "mlflow-skinny",  # tracked workloads, registry models served through mlflow.pyfunc
)
KEPT_OUT_OF_CONTEXT = (".venv", "build", "node_modules", ".git", "tests", "benchmarks")

_PIPE_TO_SHELL = (
    re.compile(r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(\S*/)?(ba|da|z|k)?sh\b"),
    re.compile(r"\b(ba|da|z|k)?sh\b[^;&|]*(\$\(|<\(|`)\s*(curl|wget)\b"),
)
_URL = re.compile(r"(^|\s)(https?|ftp)://|(^|\s)git@", re.IGNORECASE)
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|CREDENTIAL", re.IGNORECASE)
_FULL_VERSION_TAG = re.compile(r":[^:/@]*\d+\.\d+\.\d+[^:/@]*$")
_PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*\])?==[A-Za-z0-9.!+_-]+")


def test_the_pods_uid_is_high() -> None:
    assert RUNTIME_UID == 10001 >= MIN_UID  # no clash with a user of the node


def dockerfiles() -> list[Path]:
    return sorted(IMAGES.rglob("Dockerfile"))


def requirement_files() -> list[Path]:
    return sorted(IMAGES.glob("requirements-*.txt"))


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuations joined, comment lines dropped."""
    steps: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment and blank lines, inside a continuation too
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        keyword, _, args = (current + line).partition(" ")
        steps.append((keyword.upper(), args.strip()))
        current = ""
    if current.strip():
        keyword, _, args = current.strip().partition(" ")
        steps.append((keyword.upper(), args.strip()))
    return steps


def _flags_and_words(args: str) -> tuple[list[str], list[str]]:
    words = shlex.split(args)
    return [w for w in words if w.startswith("--")], [w for w in words if not w.startswith("--")]


def _env_pairs(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if words and "=" not in words[0]:  # legacy form: ENV KEY value
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words if "=" in word)


def dockerfile_problems(text: str) -> list[str]:
    """What is wrong with a runtime image's Dockerfile; empty when nothing is."""
    steps = instructions(text)
    starts = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    if not starts:
        return ["no FROM instruction"]
    problems: list[str] = []
    stages = set()
    for i in starts:
        _, words = _flags_and_words(steps[i][1])
        image = words[0]
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.add(words[2].lower())
        if image.lower() not in stages and not _FULL_VERSION_TAG.search(image.split("@")[0]):
            problems.append(f"FROM {image}: pin the base image to a full version tag (x.y.z)")
    final = steps[starts[-1] :]
    users = [args for keyword, args in final if keyword == "USER"]
    if not users:
        problems.append("the final stage sets no USER, so the image runs as root")
    else:
        match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
        if match is None:
            problems.append(f"USER {users[-1]}: give a numeric uid:gid (runAsNonRoot checks the uid)")
        elif {int(match[1]), int(match[2] or match[1])} != {RUNTIME_UID}:
            problems.append(f"USER {users[-1]}: the pods run as {RUNTIME_UID}:{RUNTIME_UID}")
    env: dict[str, str] = {}
    workdir = None
    for keyword, args in final:
        if keyword == "ENV":
            env.update(_env_pairs(args))
        elif keyword == "WORKDIR":
            workdir = args
    for key in ("PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR"):
        if env.get(key) != "1":
            problems.append(f"the final stage does not set ENV {key}=1")
    if workdir != "/workbench":
        problems.append(f"the final WORKDIR is {workdir}, not /workbench")
    for keyword, args in steps:
        if keyword == "ADD" and _URL.search(args):
            problems.append(f"ADD {args}: fetches from the network; download with a pinned checksum instead")
        if keyword == "RUN" and any(pattern.search(args) for pattern in _PIPE_TO_SHELL):
            problems.append(f"RUN {args}: pipes a download into a shell")
        if keyword in ("ARG", "ENV"):
            names = _env_pairs(args) if keyword == "ENV" else {args.split("=", 1)[0]: ""}
            secrets = [name for name in names if _SECRET_NAME.search(name)]
            problems += [f"{keyword} {name}: no secrets in an image" for name in secrets]
    return problems


def requirement_problems(text: str) -> list[str]:
    """Lines of a requirements file that are not exactly ``name[extras]==version``."""
    problems = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not _PIN.fullmatch(line):
            problems.append(f"line {number}: {line!r} is not pinned with == to one version")
            continue
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[=]", line)[0]).lower()
        if name in seen:
            problems.append(f"line {number}: {name} is pinned twice")
        seen.add(name)
    return problems


def pins(path: Path) -> dict[str, str]:
    """Normalised name (with extras) -> version."""
    result = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            result[re.sub(r"[-_.]+", "-", name).lower()] = version
    return result


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().strip("/") for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (or a folder above it) out of the context."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!")
        anywhere = glob.startswith("**/")
        glob = glob.removeprefix("**/")
        candidates = prefixes
        if anywhere:
            candidates = ["/".join(parts[j : i + 1]) for i in range(len(parts)) for j in range(i + 1)]
        if any(fnmatch.fnmatchcase(candidate, glob) for candidate in candidates):
            result = not negated
    return result


def run_hadolint(*paths: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} is missing: install the dev extra (pip install -e '.[dev]')")
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--config", str(HADOLINT_CONFIG), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_both_runtime_images_have_a_dockerfile() -> None:
    assert [path.parent.name for path in dockerfiles()] == ["runtime", "runtime-cuda"]


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.parent.name)
def test_hadolint_finds_nothing(path: Path) -> None:
    result = run_hadolint(path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_fails_a_root_image(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11.15-slim-bookworm\nUSER root\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    assert "DL3002" in result.stdout


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.parent.name)
def test_dockerfile_runs_as_uid_10001_and_fetches_nothing_unpinned(path: Path) -> None:
    assert dockerfile_problems(path.read_text()) == []


GOOD = """\
FROM python:3.11.15-slim-bookworm AS wheel
RUN pip wheel --wheel-dir /dist .
FROM python:3.11.15-slim-bookworm
ENV PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=1
# a comment
WORKDIR /workbench
USER 10001:10001
"""


def test_a_good_example_passes() -> None:
    assert dockerfile_problems(GOOD) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param("USER 10001:10001", "USER root", "numeric", id="user-root"),
        pytest.param("USER 10001:10001", "USER workbench", "numeric", id="user-name"),
        pytest.param("USER 10001:10001", "USER 0", "run as 10001:10001", id="uid-0"),
        pytest.param("USER 10001:10001", "USER 10001:0", "run as 10001:10001", id="gid-0"),
        pytest.param("USER 10001:10001", "USER 1000:1000", "run as 10001:10001", id="low-uid"),
        pytest.param("USER 10001:10001", "", "no USER", id="no-user"),
        pytest.param("USER 10001:10001", "USER 10001:10001\nUSER root", "numeric", id="root-last"),
        pytest.param(
            "USER 10001:10001", "USER 10001:10001\nADD https://example.com/x.tgz /tmp/", "ADD", id="add-url"
        ),
        pytest.param(
            "WORKDIR /workbench", "RUN curl -fsSL https://example.com/i.sh | sh", "pipes", id="curl-sh"
        ),
        pytest.param(
            "WORKDIR /workbench",
            "RUN wget -qO- https://example.com/i.sh \\\n    | sudo bash -s",
            "pipes",
            id="wget-sudo-bash",
        ),
        pytest.param(
            "WORKDIR /workbench",
            'RUN sh -c "$(curl -fsSL https://example.com/i.sh)"',
            "pipes",
            id="sh-c-curl",
        ),
        pytest.param("WORKDIR /workbench", "ENV HF_TOKEN=hf_abc", "secrets", id="env-token"),
        pytest.param("WORKDIR /workbench", "ARG GITHUB_TOKEN", "secrets", id="arg-token"),
        pytest.param("PIP_NO_CACHE_DIR=1", "PIP_NO_CACHE_DIR=0", "PIP_NO_CACHE_DIR", id="pip-cache"),
        pytest.param("ENV PYTHONUNBUFFERED=1 \\", "ENV \\", "PYTHONUNBUFFERED", id="buffered"),
        pytest.param("WORKDIR /workbench", "WORKDIR /app", "WORKDIR", id="workdir"),
        pytest.param("bookworm\nENV", "bookworm\nFROM python:3.11-slim\nENV", "full version", id="minor-tag"),
        pytest.param(
            "FROM python:3.11.15-slim-bookworm AS", "FROM python:latest AS", "full version", id="latest"
        ),
    ],
)
def test_the_dockerfile_checks_catch(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    problems = dockerfile_problems(GOOD.replace(old, new))
    assert any(expected in problem for problem in problems), problems


def test_a_user_set_only_in_a_build_stage_does_not_count() -> None:
    text = GOOD.replace("USER 10001:10001\n", "").replace("RUN pip", "USER 10001:10001\nRUN pip")
    assert "USER 10001:10001" in text
    assert any("no USER" in problem for problem in dockerfile_problems(text))


@pytest.mark.parametrize("path", requirement_files(), ids=lambda p: p.name)
def test_requirements_pin_every_line(path: Path) -> None:
    assert requirement_problems(path.read_text()) == []


@pytest.mark.parametrize(
    "line", ["numpy", "numpy>=2", "numpy==2.*", "numpy~=2.4", "numpy==2.4 ; python_version<'4'", "-e ."]
)
def test_the_pin_check_catches(line: str) -> None:
    assert requirement_problems(f"# pins\nscipy==1.16.0\n{line}\n")


def test_the_pin_check_catches_a_package_pinned_twice() -> None:
    assert requirement_problems("numpy==2.4.6\nNumPy==2.4.6\n")


def test_runtime_requirements_cover_the_runtime() -> None:
    pinned = pins(RUNTIME_REQUIREMENTS)
    assert [name for name in RUNTIME_PACKAGES if name not in pinned] == []
    # the image's torch is the one the test suite runs against (constraints.txt)
    assert f"torch=={pinned['torch']}" in (ROOT / "constraints.txt").read_text().split()


def test_dockerignore_keeps_local_state_out_and_what_is_copied_in() -> None:
    patterns = dockerignore_patterns()
    assert [name for name in KEPT_OUT_OF_CONTEXT if not ignored(f"{name}/x", patterns)] == []
    assert ignored("workbench/runtime/__pycache__/cell.cpython-311.pyc", patterns)
    for path in dockerfiles():
        for keyword, args in instructions(path.read_text()):
            flags, words = _flags_and_words(args)
            if keyword != "COPY" or any(flag.startswith("--from") for flag in flags):
                continue
            for source in words[:-1]:
                assert list(ROOT.glob(source.rstrip("/"))), f"{path}: COPY {source} does not exist"
                assert not ignored(source, patterns), f"{path}: COPY {source} is in .dockerignore"


def test_readme_names_the_tags_of_this_version() -> None:
    readme = (IMAGES / "README.md").read_text()
    for name in ("runtime", "runtime-cuda"):
        assert f"ghcr.io/jupyter-ml-workbench/{name}:{__version__}" in readme
        assert f"docker build -f images/{name}/Dockerfile" in readme

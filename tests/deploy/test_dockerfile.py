"""deploy/Dockerfile, checked without a Docker engine: its shape, and that the files it
copies build a package holding everything `haggle run` needs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, REPO

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip() if " " in line.strip() else "")
        for line in joined.splitlines()
        if line.strip()
    ]


def stages(steps: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for step in steps:
        if step[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(step)
    return found


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def test_multi_stage_from_a_pinned_slim_python_matching_the_project(steps: list[tuple[str, str]]) -> None:
    base = next(args for op, args in steps if op == "ARG" and args.startswith("BASE="))
    image = base.split("=", 1)[1]
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image)
    assert match, f"base image {image!r} is not pinned to a full python x.y.z-slim tag"
    assert (int(match[1]), int(match[2])) == sys.version_info[:2], "image Python differs from the tested one"
    assert len(stages(steps)) >= 2
    assert all(args.startswith("${BASE}") for op, args in steps if op == "FROM")


def test_final_stage_runs_haggle_as_a_non_root_user_with_a_healthcheck(steps: list[tuple[str, str]]) -> None:
    final = dict(reversed(stages(steps)[-1]))
    assert final["USER"] == "10001:10001"
    assert json.loads(final["ENTRYPOINT"]) == ["haggle"]
    assert final["EXPOSE"] == "8080"
    assert "HAGGLE_HTTP_HOST=0.0.0.0" in final["ENV"] and "HAGGLE_HTTP_PORT=8080" in final["ENV"]
    assert "/healthz" in final["HEALTHCHECK"]
    assert "COPY" in final and "--from=build" in final["COPY"], "the runtime stage copies only the venv"
    assert not any(op == "RUN" and "pip" in args for op, args in stages(steps)[-1]), (
        "no build tools at runtime"
    )


def copied_sources(steps: list[tuple[str, str]]) -> list[str]:
    sources = []
    for op, args in stages(steps)[0]:
        if op == "COPY" and "--from" not in args:
            sources += args.split()[:-1]
    return sources


def test_copied_files_exist_and_are_not_docker_ignored(steps: list[tuple[str, str]]) -> None:
    sources = copied_sources(steps)
    assert {"pyproject.toml", "haggle", "services", "deploy/requirements.txt"} <= set(sources)
    missing = [s for s in sources if not (REPO / s).exists()]
    assert not missing, (
        f"the Dockerfile copies {missing}, absent from the repository: docker build would fail"
    )
    kept = {line[1:].rstrip("/") for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()}
    assert set(sources) <= kept, "every copied path is re-included after the ignore-all rule"


@pytest.mark.timeout(300)
def test_the_copied_files_build_a_wheel_with_every_migration_and_the_entrypoint(
    steps: list[tuple[str, str]], tmp_path: Path
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for source in copied_sources(steps):
        path = REPO / source
        if not path.exists():
            pytest.fail(f"{source} is missing (see test_copied_files_exist_and_are_not_docker_ignored)")
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (context / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, context / source)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "out"), str(context)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    wheel = zipfile.ZipFile(next((tmp_path / "out").glob("haggle-*.whl")))
    names = set(wheel.namelist())
    wanted = {p.relative_to(REPO).as_posix() for p in REPO.glob("services/*/migrations/*.sql")}
    wanted |= {p.relative_to(REPO).as_posix() for p in REPO.glob("services/*/app.py")}
    wanted |= {"haggle/cli/migrate.py", "haggle/infra/pom.xml"}
    assert wanted - names == set()
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "haggle = haggle.cli:main" in wheel.read(entry_points).decode()


def test_the_image_lock_is_the_tested_venv() -> None:
    """deploy/requirements.txt, what the image installs, holds the versions this venv runs."""
    done = subprocess.run(
        [sys.executable, str(DEPLOY / "lock.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr

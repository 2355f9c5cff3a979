"""The agents' domain is pure: no module in it imports a database, broker or HTTP client."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import services.agents.domain

DOMAIN = Path(services.agents.domain.__file__).parent
FORBIDDEN = ("asyncpg", "aiokafka", "faststream", "httpx", "anthropic", "openai", "haggle.runtime")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def forbidden(names: set[str]) -> set[str]:
    return {n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)}


def test_the_domain_imports_no_io() -> None:
    files = sorted(DOMAIN.glob("*.py"))
    assert len(files) >= 8
    found = {str(p.name): forbidden(imported(p)) for p in files}
    assert {name: bad for name, bad in found.items() if bad} == {}


def test_the_check_sees_a_forbidden_import() -> None:
    assert forbidden({"asyncpg", "haggle.runtime.outbox", "httpx._client", "haggle.guard"}) == {
        "asyncpg",
        "haggle.runtime.outbox",
        "httpx._client",
    }


def test_importing_the_domain_loads_no_io_library() -> None:
    code = (
        "import sys, services.agents.domain.turn, services.agents.domain.deals;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN[:6]!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

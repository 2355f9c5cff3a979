"""The kernel (`haggle/`) imports no service and nothing from `haggle_lab`; only `haggle/cli` may,
because a command line composes services. Checked on the syntax tree of every module, so an
import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

KERNEL = Path(__file__).resolve().parents[2] / "haggle"
FORBIDDEN = ("services", "haggle_lab")


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def forbidden_imports(source: str) -> list[tuple[int, str]]:
    return [
        (line, name) for line, name in imported_modules(ast.parse(source)) if name.split(".")[0] in FORBIDDEN
    ]


def test_the_kernel_imports_no_service_and_no_lab() -> None:
    offenders = []
    modules = [p for p in KERNEL.rglob("*.py") if "cli" not in p.relative_to(KERNEL).parts[:1]]
    assert len(modules) > 50  # the walk found the kernel
    for path in modules:
        for line, name in forbidden_imports(path.read_text()):
            offenders.append(f"{path.relative_to(KERNEL.parent)}:{line} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_the_check_sees_every_form_of_import() -> None:
    source = (
        "import services.settlement\n"
        "from services.agents import store\n"
        "def later():\n"
        "    from haggle_lab.sim import run\n"
        "from haggle.runtime import service\n"
        "import servicesx\n"
    )
    assert forbidden_imports(source) == [
        (1, "services.settlement"),
        (2, "services.agents"),
        (4, "haggle_lab.sim"),
    ]

"""`haggle bench <name> [ARGS...]`: run `bench.<name>.main(ARGS)` from the repository's bench/ folder."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path

import typer

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_HELPERS = {"scale_open", "scale_search"}


def available() -> list[str]:
    root = str(Path(__file__).resolve().parents[2])
    if (Path(root) / "bench" / "__init__.py").exists() and root not in sys.path:
        sys.path.insert(0, root)  # an editable install's console script does not see the repository root
    import bench

    return sorted(
        m.name
        for m in pkgutil.iter_modules(bench.__path__)
        if not m.name.startswith("_") and m.name not in _HELPERS
    )


def bench(ctx: typer.Context, name: str = typer.Argument(..., help="e.g. kafka_ceiling, scale")) -> None:
    """Run one benchmark; extra arguments go to it (`haggle bench scale search --listings 1000`)."""
    try:
        names = available()
    except ImportError as exc:
        raise typer.BadParameter(
            "the bench/ package is not importable: run from the repository root"
        ) from exc
    if not _NAME.match(name) or name not in names:
        raise typer.BadParameter(f"unknown benchmark {name!r}; one of: {', '.join(names)}")
    importlib.import_module(f"bench.{name}").main(list(ctx.args))

"""JSON Schema for every message: what `haggle contracts export DIR` writes."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from haggle.contracts.codec import MESSAGE_TYPES
from haggle.contracts.envelope import Envelope


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    models: dict[str, type[BaseModel]] = {"Envelope": Envelope, **MESSAGE_TYPES}
    for name, model in sorted(models.items()):
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written

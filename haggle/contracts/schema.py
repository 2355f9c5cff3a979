"""The contracts as files: what `haggle contracts export [DIR]` writes (DIR defaults to `contracts/`).

    DIR/asyncapi.yaml               the AsyncAPI 3.0 document of every topic and message
    DIR/schemas/<Type>.schema.json  JSON Schema of the envelope and of every payload
    DIR/samples/v<N>/<Type>.json    one sample envelope per type and schema version, written once

The document and the schemas are regenerated from the code each time; samples are only added
(see `haggle.contracts.samples`). `drift(DIR)` names every file the code would write differently.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import BaseModel

from haggle.contracts import asyncapi, samples
from haggle.contracts.codec import MESSAGE_TYPES
from haggle.contracts.envelope import Envelope

DEFAULT_DIR = Path("contracts")


def _json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def generated() -> dict[str, str]:
    """Every regenerated file, by its path under the contracts folder."""
    files = {
        "asyncapi.yaml": yaml.safe_dump(asyncapi.document(), sort_keys=False, allow_unicode=True, width=110)
    }
    models: dict[str, type[BaseModel]] = {"Envelope": Envelope, **MESSAGE_TYPES}
    for name, model in sorted(models.items()):
        files[f"schemas/{name}.schema.json"] = _json(model.model_json_schema())
    return files


def missing_samples(directory: Path) -> dict[str, str]:
    found = {}
    for model in MESSAGE_TYPES.values():
        path = samples.sample_path(directory / "samples", model)
        if not path.exists():
            found[str(path.relative_to(directory))] = samples.render(model)
    return found


def export(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write the document and schemas (removing schemas of types that are gone) and any missing sample."""
    written = []
    schemas = directory / "schemas"
    wanted = generated()
    if schemas.exists():
        for stale in schemas.glob("*.schema.json"):
            if f"schemas/{stale.name}" not in wanted:
                stale.unlink()
    for relative, text in {**wanted, **missing_samples(directory)}.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def drift(directory: Path = DEFAULT_DIR) -> list[str]:
    """Files that differ from what the code generates, are missing, or should not be there."""
    wanted = generated()
    problems = [f"{rel}: missing sample" for rel in missing_samples(directory)]
    for relative, text in wanted.items():
        path = directory / relative
        if not path.exists():
            problems.append(f"{relative}: missing")
        elif path.read_text() != text:
            problems.append(f"{relative}: differs from the code")
    schemas = directory / "schemas"
    if schemas.exists():
        for extra in sorted(schemas.glob("*.schema.json")):
            if f"schemas/{extra.name}" not in wanted:
                problems.append(f"schemas/{extra.name}: no such message type")
    return problems

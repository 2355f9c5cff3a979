"""The `haggle` command as a person types it: contracts export, services status, operator key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from haggle import procs
from haggle.contracts import MESSAGE_TYPES


def haggle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haggle", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_contracts_export_writes_a_json_schema_for_every_message(tmp_path: Path) -> None:
    done = haggle("contracts", "export", str(tmp_path))
    assert done.returncode == 0, done.stderr
    schemas = tmp_path / "schemas"
    written = {p.name.removesuffix(".schema.json"): json.loads(p.read_text()) for p in schemas.iterdir()}
    assert set(written) == {"Envelope", *MESSAGE_TYPES}
    assert written["DealAgreed"]["properties"]["price_cents"]["type"] == "integer"
    assert "price_cents" in written["DealAgreed"]["required"]
    assert set(written["CreateListing"]["properties"]) >= {
        "listing_id",
        "condition",
        "price_cents",
        "item",
        "shipping",
    }
    assert (tmp_path / "asyncapi.yaml").exists()
    assert haggle("contracts", "export", str(tmp_path), "--check").returncode == 0


def test_contracts_check_fails_on_a_drifted_document(tmp_path: Path) -> None:
    assert haggle("contracts", "export", str(tmp_path)).returncode == 0
    schema = tmp_path / "schemas" / "DealAgreed.schema.json"
    schema.write_text(schema.read_text().replace("price_cents", "price_dollars"))
    done = haggle("contracts", "export", str(tmp_path), "--check")
    assert done.returncode == 1
    assert "DealAgreed.schema.json" in done.stdout


@pytest.mark.usefixtures("running_services")
def test_services_status_reports_every_service_ready() -> None:
    done = haggle("services", "status")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in procs.SERVICES:
        assert name in done.stdout


def test_services_status_fails_when_a_service_is_down() -> None:
    env_port = "HAGGLE_LISTING_PORT"
    done = subprocess.run(
        [sys.executable, "-m", "haggle", "services", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HAGGLE_STATE_DIR": "/nonexistent-haggle-state", env_port: "1"},
    )
    assert done.returncode == 1
    assert "not running" in done.stdout


def test_operator_public_key_is_stable(tmp_path: Path) -> None:
    env = {**os.environ, "HAGGLE_STATE_DIR": str(tmp_path)}
    first = subprocess.run(
        [sys.executable, "-m", "haggle", "operator", "public-key"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    ).stdout.strip()
    again = subprocess.run(
        [sys.executable, "-m", "haggle", "operator", "public-key"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    ).stdout.strip()
    assert first == again and len(first) == 43
    assert (tmp_path / "operator.key").stat().st_mode & 0o077 == 0, "the private key is readable by others"

"""The one settings object: the environment read once, typed, secrets kept out of logs."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest
from pydantic import ValidationError

from haggle.runtime import logs, settings
from haggle.runtime.settings import BadSettings, Settings

SECRET = "sk-not-for-logs-4f9c2a"


def test_variables_keep_their_deployed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAGGLE_KAFKA_PORT", "30192")
    monkeypatch.setenv("HAGGLE_PG_PORT", "30132")
    monkeypatch.setenv("HAGGLE_WEB_PORT", "30105")
    monkeypatch.setenv("HAGGLE_OPERATOR_PUBLIC_KEYS", " one , two,")
    monkeypatch.setenv("HAGGLE_SETTLEMENT_TICK_SECONDS", "0.5")
    monkeypatch.setenv("HAGGLE_WEB_SECURE_COOKIES", "0")
    monkeypatch.setenv("HAGGLE_GATEWAY_MOVES_BURST", "3")
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("HAGGLE_STRIPE_API_BASE", "http://127.0.0.1:12111")
    monkeypatch.setenv("HAGGLE_PAYMENTS_LEASE_SECONDS", "2")
    monkeypatch.setenv("HAGGLE_STRIPE_API_KEY", "")  # empty: unset, as before
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("HAGGLE_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("HAGGLE_HTTP_PORT", raising=False)
    read = settings.load()
    assert read.kafka_bootstrap_servers == "127.0.0.1:30192"
    assert read.database_url.endswith("@127.0.0.1:30132/haggle")
    assert read.port_for("web") == 30105
    assert read.operator_public_keys == ("one", "two")
    assert read.settlement_tick_seconds == 0.5
    assert read.web_secure_cookies is False
    assert read.gateway_moves_burst == 3
    assert read.anthropic_api_key is not None and read.anthropic_api_key.get_secret_value() == SECRET
    assert read.stripe_api_base == "http://127.0.0.1:12111" and read.payments_lease_seconds == 2
    assert read.stripe_api_key is None and not read.stripe_configured


def test_the_environment_is_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAGGLE_AGENT_MOVE_BURST", "7")
    first = settings.current()
    monkeypatch.setenv("HAGGLE_AGENT_MOVE_BURST", "8")
    assert settings.current() is first
    assert settings.current().agent_move_burst == 7


def test_a_secret_never_shows_in_a_repr_or_a_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = (
        "HAGGLE_OPERATOR_KEY",
        "HAGGLE_SHIPPING_KEY",
        "HAGGLE_WEB_DATA_KEY",
        "OPENAI_API_KEY",
        "HAGGLE_STRIPE_API_KEY",
        "HAGGLE_STRIPE_WEBHOOK_SECRET",
    )
    for name in secrets:
        monkeypatch.setenv(name, SECRET)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://haggle:{SECRET}@db.example:5432/haggle")
    read = settings.load()
    assert SECRET in read.database_url  # there for the pool, and nowhere else
    assert read.shipping_key is not None and read.shipping_key.get_secret_value() == SECRET
    assert settings.revealed(read.stripe_api_key) == SECRET and read.stripe_configured
    assert settings.revealed(read.stripe_webhook_secret) == SECRET
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter("test"))
    log = logging.getLogger("haggle.test_settings")
    log.addHandler(handler)
    try:
        log.warning("settings %s", read, extra={"settings": read, "dumped": read.model_dump()})
    finally:
        log.removeHandler(handler)
    line = out.getvalue()
    assert "operator_key" in line and "stripe_webhook_secret" in line and "**********" in line
    for shown in (line, repr(read), str(read), read.model_dump_json()):
        assert SECRET not in shown


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HAGGLE_KAFKA_PORT", "nine"),
        ("HAGGLE_PG_PORT", "70000"),
        ("HAGGLE_CONSUMER_BATCH", "0"),
        ("HAGGLE_GATEWAY_MOVES_BURST", "0"),
        ("HAGGLE_GATEWAY_REQUESTS_PER_SECOND", "-1"),
        ("HAGGLE_PAYMENTS_TIMEOUT_SECONDS", "500"),
        ("HAGGLE_STRIPE_WEBHOOK_TOLERANCE_SECONDS", "0"),
    ],
)
def test_a_bad_value_is_a_typed_error_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(BadSettings) as refused:
        settings.load()
    assert str(refused.value).startswith(f"{name}={value!r}: ")
    assert "KAFKA_BOOTSTRAP_SERVERS" not in str(refused.value)  # no knock-on error from the bad port


def test_a_bad_database_url_is_named_but_its_password_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"mysql://haggle:{SECRET}@db.example/haggle")
    with pytest.raises(settings.BadSettings, match="DATABASE_URL") as refused:
        settings.load()
    assert SECRET not in str(refused.value)


def test_a_bad_secret_is_named_but_never_echoed() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(operator_key=4_242_424_242, web_secure_cookies="maybe")  # type: ignore[arg-type]
    problem = str(settings.described(refused.value))
    assert "HAGGLE_OPERATOR_KEY: " in problem and "4242424242" not in problem
    assert "HAGGLE_WEB_SECURE_COOKIES='maybe': " in problem
    assert settings.env_name("anthropic_api_key") == "ANTHROPIC_API_KEY"
    assert settings.env_name("database_url") == "DATABASE_URL"
    with pytest.raises(ValidationError) as refused:
        Settings(stripe_webhook_secret=4_242_424_242)  # type: ignore[arg-type]
    problem = str(settings.described(refused.value))
    assert "HAGGLE_STRIPE_WEBHOOK_SECRET: " in problem and "4242424242" not in problem


def test_a_service_with_a_bad_port_stops_at_start_up_with_the_variable_named() -> None:
    env = {"PATH": "/usr/bin:/bin", "HAGGLE_KAFKA_PORT": "nine", "HAGGLE_STATE_DIR": "/nonexistent-haggle"}
    argv = [sys.executable, "-m", "haggle", "run", "listing"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "bad settings: HAGGLE_KAFKA_PORT='nine'" in done.stderr
    assert "Traceback" not in done.stderr

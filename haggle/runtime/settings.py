"""The one settings object of every service and command, from the environment (pydantic-settings).

A process reads its environment once (`current()`, at its composition root) and hands the
`Settings` down; nothing below reads `os.environ`. Every variable keeps its deployed name
(`HAGGLE_*`, and the conventional `KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`,
`ANTHROPIC_API_KEY`, `OPENAI_*`), which the Helm chart, compose and `.ci/run` set. A bad value
(a port that is not a number) fails at start-up with a `ValidationError` naming the variable.
Keys are `SecretStr`: a repr or a log line shows `**********`, never the key.

`KAFKA_BOOTSTRAP_SERVERS` and `DATABASE_URL` name external servers; without them the local
infrastructure's addresses (`HAGGLE_KAFKA_PORT`, `HAGGLE_PG_PORT`) are used.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SERVICE_PORTS = {
    "listing": 8101,
    "negotiation": 8102,
    "settlement": 8103,
    "agents": 8104,
    "web": 8105,
    "gateway": 8106,
}
REPO_ROOT = Path(__file__).resolve().parents[2]

Port = Annotated[int, Field(gt=0, lt=65_536)]


def _local_kafka(data: dict[str, Any]) -> str:
    return f"127.0.0.1:{data['kafka_port']}"


def _local_database(data: dict[str, Any]) -> str:
    return f"postgresql://haggle:haggle@127.0.0.1:{data['pg_port']}/haggle"


PG_SHARED_BUFFERS_MB = 1024
"""The local PostgreSQL's shared_buffers, unless set (`bench/README.md`, "Fifth pass")."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HAGGLE_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    # Where the infrastructure is (local ports, else external servers) and where state lives.
    kafka_port: Port = 19092
    kafka_controller_port: Port = 19093
    pg_port: Port = 15432
    pg_shared_buffers_mb: int = Field(
        default=PG_SHARED_BUFFERS_MB,
        ge=16,
        le=65_536,
        description="the local PostgreSQL's shared_buffers (PostgreSQL's default is 128 MB: a database"
        " keeping a few 500 x 3,000 markets outgrows it, and each market then runs slower than the last)",
    )
    kafka_brokers: int | None = Field(
        default=None, ge=1, description="brokers of the local cluster; unset: what the last `up` wrote"
    )
    kafka_libs_dir: Path | None = Field(default=None, description="unset: <state_dir>/kafka/libs")
    kafka_bootstrap_servers: str = Field(
        default_factory=_local_kafka,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "HAGGLE_KAFKA_BOOTSTRAP_SERVERS"),
    )
    database_url: str = Field(
        default_factory=_local_database,
        validation_alias=AliasChoices("DATABASE_URL", "HAGGLE_DATABASE_URL"),
        repr=False,
        exclude=True,
        description="carries the database password: never shown, never dumped",
    )
    state_dir: Path = REPO_ROOT / ".haggle"

    # Every service.
    market_id: str = "default"
    http_host: str = "127.0.0.1"
    http_port: Port | None = None
    listing_port: Port = SERVICE_PORTS["listing"]
    negotiation_port: Port = SERVICE_PORTS["negotiation"]
    settlement_port: Port = SERVICE_PORTS["settlement"]
    agents_port: Port = SERVICE_PORTS["agents"]
    web_port: Port = SERVICE_PORTS["web"]
    gateway_port: Port = SERVICE_PORTS["gateway"]
    log_level: str = "INFO"
    group_prefix: str = "haggle"
    max_handler_attempts: int = Field(default=3, ge=1, le=100)
    consumer_batch: int = Field(default=200, ge=1, le=10_000)
    relay_batch: int = Field(default=500, ge=1, le=10_000)
    pool_size: int = Field(default=12, ge=1, le=200)
    handler_concurrency: int = Field(default=8, ge=1, le=200, description="keys handled at once per batch")

    # Keys (secrets): the operator's, and the AES keys personal data is sealed with.
    operator_key: SecretStr | None = Field(
        default=None, description="the operator's private key, urlsafe base64"
    )
    operator_public_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="comma-separated urlsafe base64 public keys; replace the local key"
    )
    shipping_key: SecretStr | None = Field(
        default=None, description="32 bytes, urlsafe base64 (web, settlement)"
    )
    web_data_key: SecretStr | None = Field(default=None, description="32 bytes, urlsafe base64 (web)")

    # Model providers (their conventional names, no prefix).
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")

    # One service's own knobs.
    settlement_tick_seconds: float = Field(default=0.25, gt=0, le=60, description="timer poll")
    agent_moves_per_second: float = Field(default=20.0, gt=0)
    agent_move_burst: int = Field(default=40, ge=1)
    gateway_requests_per_second: float = Field(default=20.0, gt=0, description="per API key")
    gateway_requests_burst: int = Field(default=40, ge=1)
    gateway_moves_per_second: float = Field(default=5.0, gt=0, description="per agent key")
    gateway_moves_burst: int = Field(default=10, ge=1)
    web_secure_cookies: bool = True
    web_public_url: str | None = None
    web_interview_model: str = "claude-sonnet-4-5"

    # Settlement's card payments: `HAGGLE_STRIPE_*` reaches Stripe, `HAGGLE_PAYMENTS_*` paces the job.
    stripe_api_key: SecretStr | None = Field(default=None, description="sk_live_… or sk_test_…")
    stripe_api_base: str | None = Field(default=None, description="another API host (stripe-mock, a fake)")
    stripe_webhook_secret: SecretStr | None = Field(default=None, description="whsec_… of the endpoint")
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3_600)
    payments_auth_validity_seconds: int = Field(
        default=7 * 24 * 3600, ge=1, description="how long a card authorization lasts (Stripe: 7 days)"
    )
    payments_capture_margin_seconds: int = Field(
        default=24 * 3600, ge=0, description="capture this long before the authorization lapses"
    )
    payments_tick_seconds: float = Field(default=0.25, gt=0, le=60)
    payments_sweep_seconds: float = Field(
        default=5.0, gt=0, le=3_600, description="how often held authorizations are checked for capture"
    )
    payments_lease_seconds: float = Field(
        default=60.0, gt=0, description="an operation claimed but not answered is tried again after this"
    )
    payments_timeout_seconds: float = Field(default=20.0, gt=0, le=120)
    payments_retry_seconds: float = Field(
        default=20.0, gt=0, description="retries (same idempotency key) give up after this, then the lease"
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        return value

    @field_validator("operator_public_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(key.strip() for key in value.split(",") if key.strip())
        return value

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def stripe_configured(self) -> bool:
        return bool(revealed(self.stripe_api_key))

    def service_port(self, service: str) -> int:
        """The port `service` listens on (`HAGGLE_<SERVICE>_PORT`, else its default)."""
        port = getattr(self, f"{service}_port", None) if service in SERVICE_PORTS else None
        return port if isinstance(port, int) else 8100

    def port_for(self, service: str) -> int:
        """This process's HTTP port: `HAGGLE_HTTP_PORT` (set per instance), else the service's."""
        return self.http_port if self.http_port is not None else self.service_port(service)


def revealed(secret: SecretStr | None) -> str:
    """A secret's value for the one call that needs it ("" when unset); never log it."""
    return secret.get_secret_value() if secret is not None else ""


class BadSettings(ValueError):
    """The environment holds a value a setting cannot take; the message names each variable
    (never a secret's value)."""


def env_name(field: str) -> str:
    """The environment variable a setting is read from (the first one, when it has several)."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return alias if isinstance(alias, str) else f"HAGGLE_{field.upper()}"


def _problem(error: Any) -> str:
    field = str(error["loc"][0]) if error["loc"] else ""
    if field not in Settings.model_fields:
        return str(error["msg"])
    info = Settings.model_fields[field]
    secret = "SecretStr" in str(info.annotation) or not info.repr
    shown = "" if secret else f"={error['input']!r}"
    return f"{env_name(field)}{shown}: {error['msg']}"


def described(exc: ValidationError) -> BadSettings:
    """A settings validation error as BadSettings: each variable, its value unless secret, why."""
    # A default built from a bad setting (the local bootstrap from a bad port) adds nothing.
    problems = [_problem(e) for e in exc.errors() if e["type"] != "default_factory_not_called"]
    return BadSettings("; ".join(problems))


def load() -> Settings:
    """Settings from the environment, or BadSettings naming every variable that is wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        raise described(exc) from None


@functools.cache
def current() -> Settings:
    """This process's settings: its environment, read once. Composition roots (a service's
    `serve`, a command) take them here and pass them down."""
    return load()

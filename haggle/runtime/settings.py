"""Settings for every service and command, from the environment (pydantic-settings).

`KAFKA_BOOTSTRAP_SERVERS` and `DATABASE_URL` name external servers; without
them the local infrastructure's addresses are used.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_PORTS = {
    "listing": 8101,
    "negotiation": 8102,
    "settlement": 8103,
    "agents": 8104,
    "web": 8105,
    "gateway": 8106,
}


def _local_kafka() -> str:
    import os

    return f"127.0.0.1:{os.environ.get('HAGGLE_KAFKA_PORT', '19092')}"


def _local_database() -> str:
    import os

    port = os.environ.get("HAGGLE_PG_PORT", "15432")
    return f"postgresql://haggle:haggle@127.0.0.1:{port}/haggle"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HAGGLE_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default_factory=_local_kafka,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "HAGGLE_KAFKA_BOOTSTRAP_SERVERS"),
    )
    database_url: str = Field(
        default_factory=_local_database,
        validation_alias=AliasChoices("DATABASE_URL", "HAGGLE_DATABASE_URL"),
    )
    market_id: str = "default"
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    log_level: str = "INFO"
    group_prefix: str = "haggle"
    max_handler_attempts: int = Field(default=3, ge=1, le=100)
    consumer_batch: int = Field(default=200, ge=1, le=10_000)
    relay_batch: int = Field(default=500, ge=1, le=10_000)
    pool_size: int = Field(default=12, ge=1, le=200)
    handler_concurrency: int = Field(default=8, ge=1, le=200, description="keys handled at once per batch")

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        return value

    def port_for(self, service: str) -> int:
        return self.http_port if self.http_port is not None else SERVICE_PORTS.get(service, 8100)

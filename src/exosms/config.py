"""Settings: declared once here, with type, default and help; read from a TOML file and
``EXOSMS_*`` environment variables (the environment wins over the file, command-line
options win over both)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from exosms.settings_sections import (
    AuthSettings,
    DltSettings,
    ExotelSettings,
    ForwardingSettings,
    GuardSettings,
    InboxSettings,
    MetricsSettings,
    NotifySettings,
)

ENV_PREFIX = "EXOSMS_"
DEFAULT_CONFIG_FILE = Path("exosms.toml")
_config_file: ContextVar[Path | None] = ContextVar("exosms_config_file", default=None)

__all__ = [
    "AuthSettings",
    "ConfigError",
    "DltSettings",
    "ExotelSettings",
    "ForwardingSettings",
    "GuardSettings",
    "InboxSettings",
    "MetricsSettings",
    "Settings",
    "load_settings",
    "resolve_config_file",
    "rules_path",
    "secret_values",
    "settings_as_environment",
]


class Settings(BaseSettings):
    """Every exosms setting. ``docs/settings.md`` lists them all (a test keeps it so)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        frozen=True,
    )

    host: str = Field("127.0.0.1", description="Address the server listens on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port the server listens on.")
    database_url: str = Field(
        "sqlite:///exosms.db",
        description="Where messages are stored: `sqlite:///path/to/file.db` (the default, "
        "a file in the working directory) or `postgresql://user@host/db`.",
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        le=500,
        description="PostgreSQL connections per server process (SQLite uses one writer).",
    )
    app: str | None = Field(
        None,
        description="Your reply logic as `module:attribute`, a `Router` (or a callable "
        "returning one). Unset: the built-in demo router (HELP, ECHO).",
    )
    workers: int = Field(1, ge=1, le=64, description="Server processes (`serve --workers`).")
    applet_path: str = Field(
        "/exotel/sms", description="URL path that Exotel's Send-a-Reply applet calls."
    )
    reply_deadline: float = Field(
        2.0,
        gt=0,
        le=30,
        description="Seconds the reply logic may take before the fallback answer is sent.",
    )
    fallback_reply: str = Field(
        "",
        description="Reply sent when the reply logic fails or misses the deadline. "
        "Empty means no reply.",
    )
    max_body_chars: int = Field(
        10_000, ge=1, description="Longest `Body` accepted; longer requests get 400."
    )
    max_query_bytes: int = Field(
        60_000,
        ge=256,
        le=60_000,
        description="Longest query string accepted; longer requests get 414. At most 60000: "
        "the HTTP parser refuses request lines near 64 KiB on its own.",
    )
    replay_cache_size: int = Field(
        10_000,
        ge=0,
        description="Answers kept in memory per process so that Exotel's GET after its HEAD "
        "is answered without touching the database.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe log level printed."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text`: one readable line per event; `json`: one JSON object per line"
        " (`time`, `level`, `logger`, `message`, `exception`), for a log collector. Either way"
        " through the same redaction: no secrets, no customers' numbers.",
    )
    max_reply_parts: int = Field(
        7,
        ge=1,
        le=50,
        description="Most SMS parts a reply may need (Exotel's multipart limit is 7); a longer "
        "reply is not sent, the fallback is.",
    )
    dlt: DltSettings = Field(DltSettings(), description="The DLT gate.")
    auth: AuthSettings = Field(AuthSettings(), description="Who may call the webhook.")
    guards: GuardSettings = Field(GuardSettings(), description="Opt-out and loop protection.")
    exotel: ExotelSettings = Field(ExotelSettings(), description="Exotel's send API.")
    inbox: InboxSettings = Field(InboxSettings(), description="The inbox pages and JSON API.")
    forwarding: ForwardingSettings = Field(
        ForwardingSettings(), description="Every event to the business's own systems."
    )
    notify: NotifySettings = Field(
        NotifySettings(), description="Messages that need a person, through Apprise."
    )
    metrics: MetricsSettings = Field(
        MetricsSettings(), description="Prometheus metrics at `/metrics`."
    )
    late_replies: Literal["auto", "off", "api"] = Field(
        "auto",
        description="A handler that misses the applet's deadline: `api` sends its reply "
        "through Exotel's send API when it finishes (after the fallback was answered); `off` "
        "drops it; `auto`: `api` when [exotel] is configured, else `off`.",
    )
    max_concurrent_handlers: int = Field(
        100,
        ge=1,
        description="Reply handlers running at once; a request that cannot start one within "
        "the deadline gets the fallback.",
    )
    handler_threads: int = Field(
        32,
        ge=1,
        le=1024,
        description="Threads for plain (non-async) handlers, their own pool: a hung handler "
        "holds one thread; when all are busy past the deadline, the message gets the fallback "
        "and the outcome `handler_not_started`.",
    )
    request_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a whole request, headers and body, however "
        "often bytes arrive; past it the request gets 408 and the connection is closed "
        "(slowloris, slow bodies). Was `header_timeout`.",
    )
    upload_timeout: float = Field(
        120.0,
        gt=0,
        description="The same deadline on the inbox pages where a person uploads a file.",
    )
    keep_alive_timeout: float = Field(
        5.0,
        gt=0,
        description="The idle timeout: seconds a connection may stay open with no request "
        "arriving (before its first request, and between keep-alive requests).",
    )
    max_connections: int = Field(
        2000,
        ge=10,
        description="Open connections at most; past it new requests get 503 at once.",
    )
    max_connections_per_address: int = Field(
        200,
        ge=1,
        description="Open connections from one client address at most (a trusted proxy's "
        "own connections aside), so one slow client cannot take every slot; past it 503.",
    )
    max_headers: int = Field(
        100, ge=10, le=10_000, description="Header lines one request may have; more get 431."
    )
    max_header_bytes: int = Field(
        8192,
        ge=1024,
        description="Bytes one header line (name and value) may have; longer gets 431.",
    )
    max_head_bytes: int = Field(
        96 * 1024,
        ge=65_536,
        description="Bytes the request line and all headers together may have; more gets 431.",
    )
    max_request_bytes: int = Field(
        64 * 1024,
        ge=4096,
        description="Bytes a request body may have (webhooks, forms, the API); past it 413, "
        "before the rest is read.",
    )
    max_upload_bytes: int = Field(
        8 * 1024 * 1024,
        ge=65_536,
        description="Bytes a file uploaded on an inbox page may have; past it 413.",
    )
    rules_file: str | None = Field(
        None,
        description="A TOML file of [[rules]] (docs/rules.md). Relative paths are read from "
        "the config file's folder, else the working directory.",
    )
    rules: list[dict[str, Any]] = Field(
        default_factory=list,
        description="[[rules]] written in the config file itself, instead of a rules_file.",
    )
    rules_reload_seconds: float = Field(
        1.0, gt=0, description="How often the server checks the rules file for changes."
    )
    session_ttl: float = Field(
        1800.0,
        gt=0,
        description="Seconds a sender's conversation state lives after their last message.",
    )
    timezone: str = Field(
        "Asia/Kolkata", description="Time zone for {received_at} in replies and for display."
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        # `header_timeout` became `request_timeout` (it now bounds the body too).
        if isinstance(data, dict) and "header_timeout" in data:
            data = dict(data)
            old = data.pop("header_timeout")
            data.setdefault("request_timeout", old)
        return data

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Kolkata)") from None
        return value

    @field_validator("applet_path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value or (value.endswith("/") and value != "/"):
            raise ValueError("must start with '/', not end with '/', and have no query")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


class ConfigError(Exception):
    """The configuration cannot be used; the message says why, one problem a line."""


def resolve_config_file(config_file: Path | str | None) -> Path | None:
    """The TOML file to read: the one given, else ``$EXOSMS_CONFIG``, else ``./exosms.toml``."""
    if config_file is not None:
        path = Path(config_file)
    elif os.environ.get(f"{ENV_PREFIX}CONFIG"):
        path = Path(os.environ[f"{ENV_PREFIX}CONFIG"])
    elif DEFAULT_CONFIG_FILE.is_file():
        return DEFAULT_CONFIG_FILE
    else:
        return None
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return path


@contextmanager
def _reading(config_file: Path | None) -> Iterator[None]:
    token = _config_file.set(config_file)
    try:
        yield
    finally:
        _config_file.reset(token)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the settings; ``overrides`` (command-line options) win over everything else."""
    from pydantic import ValidationError

    path = resolve_config_file(config_file)
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        with _reading(path):
            return Settings(**given)
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "settings"
            lines.append(f"{where}: {problem['msg']}")
        source = f" (from {path})" if path else ""
        raise ConfigError(f"invalid settings{source}:\n  " + "\n  ".join(lines)) from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None


def rules_path(settings: Settings, config_file: Path | None) -> Path | None:
    """Where ``rules_file`` points: beside the config file if it is there, else as given."""
    if settings.rules_file is None:
        return None
    path = Path(settings.rules_file)
    if not path.is_absolute() and config_file is not None:
        beside = config_file.parent / path
        if beside.exists():
            return beside
    return path


def secret_values(settings: Settings) -> list[str]:
    """Every secret setting's value, and the Exotel account and key (for the log redactor)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(settings)
    found += [v for v in (settings.exotel.account_sid, settings.exotel.api_key) if v]
    return found


def settings_as_environment(settings: Settings) -> dict[str, str]:
    """The settings as ``EXOSMS_*`` variables, for worker processes started by the server."""
    import json

    def reveal(value: Any) -> Any:
        # Workers need the real secrets; this dict goes to their environment, never a log.
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, dict):
            return {k: reveal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [reveal(v) for v in value]
        return value

    env: dict[str, str] = {}
    for name, value in ((k, reveal(v)) for k, v in settings.model_dump().items()):
        if value is None or name == "rules":
            continue  # inline rules are re-read from the config file, for their line numbers
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        env[f"{ENV_PREFIX}{name.upper()}"] = text
    return env

"""The tables of the settings file (``[dlt]``, ``[auth]``, ``[guards]``, ``[exotel]``,
``[inbox]``, ``[notify]``, ``[forwarding]``, ``[metrics]``), each declared once with type,
default and help.
:class:`exosms.config.Settings` holds one of each; each part of exosms is given its own table.

Why one module: it is the settings' shape and nothing else (no logic beyond checking a
value), read top to bottom beside docs/settings.md; split by table, a user's question
("what can I set?") would be answered across eight files.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class DltSettings(BaseModel):
    """The DLT gate on every reply (``[dlt]`` in the TOML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["auto", "off", "warn", "enforce"] = Field(
        "auto",
        description="`off`: no check. `warn`: record and log the verdict, send anyway. "
        "`enforce`: a reply matching no approved template is not sent (the fallback is, if "
        "it matches one). `auto`: `warn` while no templates are loaded, `enforce` once some are.",
    )
    var_max_len: int = Field(
        30, ge=1, le=500, description="Most characters one `{#var#}` may hold (DLT: 30)."
    )
    typed_var_max_len: int = Field(
        30,
        ge=1,
        le=500,
        description="Most characters a typed tag (`{#numeric#}`, `{#cbn#}`, ...) may hold; "
        "some portals allow 40.",
    )
    reload_seconds: float = Field(
        5.0, gt=0, description="How often the server looks for newly imported templates."
    )


class AuthSettings(BaseModel):
    """Who may call the webhook (``[auth]``). Exotel signs nothing and publishes no IPs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretStr | None = Field(
        None,
        description="A secret the caller must present: in the path (`/exotel/sms/<token>`) or "
        "as `?token=`. `exosms init` makes one.",
    )
    basic_user: str | None = Field(None, description="HTTP Basic auth user name.")
    basic_password: SecretStr | None = Field(None, description="HTTP Basic auth password.")
    allow_ips: list[str] = Field(
        default_factory=list,
        description='CIDRs allowed to call (e.g. `["203.0.113.0/24"]`); empty allows all.',
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs of your reverse proxies; only from them is `X-Forwarded-For` believed.",
    )

    @field_validator("allow_ips", "trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        import ipaddress

        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP address or CIDR") from None
        return value


class GuardSettings(BaseModel):
    """Opt-out and loop protection (``[guards]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    optout_keywords: list[str] = Field(
        ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"],
        description="A message that is one of these (alone) opts the sender out.",
    )
    optin_keywords: list[str] = Field(
        ["START", "UNSTOP"], description="A message that is one of these opts the sender back in."
    )
    optout_reply: str = Field(
        "You will get no more SMS from this number. Send START to opt back in.",
        description="The one confirmation sent on opting out; empty sends none.",
    )
    optin_reply: str = Field(
        "You will get SMS from this number again. Send STOP to opt out.",
        description="The confirmation sent on opting back in; empty sends none.",
    )
    replies_per_10min: int = Field(5, ge=0, description="Most replies to one sender in 10 minutes.")
    replies_per_day: int = Field(50, ge=0, description="Most replies to one sender in 24 hours.")
    loop_window_seconds: float = Field(
        300,
        ge=0,
        description="The same text from the same sender within this many seconds gets at "
        "most one reply.",
    )
    reply_to_non_numbers: bool = Field(
        False,
        description="Reply to short codes and alphanumeric senders (`VM-ACMEIN`); off by "
        "default, since those are machines.",
    )


class ExotelSettings(BaseModel):
    """Exotel's send API, for replies to webhook SMS and `exosms send` (``[exotel]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_sid: str | None = Field(None, description="Your Exotel account SID.")
    api_key: str | None = Field(None, description="API key (Exotel dashboard, API settings).")
    api_token: SecretStr | None = Field(None, description="API token: a secret, never logged.")
    api_url: str = Field(
        "https://api.exotel.com",
        description="`https://api.exotel.com` (Singapore) or `https://api.in.exotel.com` "
        "(Mumbai); a fake Exotel's URL in tests.",
    )
    sender: str | None = Field(
        None, description="`From` for outgoing SMS: your ExoPhone or DLT header."
    )
    dlt_entity_id: str | None = Field(None, description="Your DLT principal entity id.")
    sms_type: Literal["transactional", "transactional_opt_in", "promotional"] = Field(
        "transactional", description="Exotel's `SmsType` for outgoing SMS."
    )
    public_url: str | None = Field(
        None,
        description="Where Exotel reaches this server (e.g. `https://sms.example.in`), for "
        "delivery status callbacks. Unset: no callbacks are asked for.",
    )
    timeout_seconds: float = Field(
        10, gt=0, le=120, description="How long a call to Exotel's API may take."
    )
    send_lease_seconds: float = Field(
        60,
        ge=1,
        description="How long one process holds an SMS it is sending; past it (the process "
        "died) the SMS is due again if it was not yet posted, and in doubt if it was.",
    )
    sends_at_once: int = Field(
        8,
        ge=1,
        le=100,
        description="How many SMS one process posts to Exotel together, each to a different "
        "customer (a customer's replies still leave in order); 1: one after another.",
    )
    unknown_policy: Literal["hold", "resend"] = Field(
        "hold",
        description="An SMS whose send may have reached Exotel (its answer was lost) and that "
        "no status callback settled within `unknown_wait_seconds`: `hold` it for a person "
        "(`exosms outbox resend|give-up ID`), or `resend` it (the customer may get it twice).",
    )
    unknown_wait_seconds: float = Field(
        600, ge=1, description="How long an SMS in doubt waits for its status callback."
    )
    reconcile_after_seconds: float = Field(
        900,
        ge=1,
        description="A sent SMS with no final delivery status after this long is looked up "
        "through Exotel's SMS details endpoint (a lost callback made good).",
    )
    reconcile_per_minute: int = Field(
        30, ge=0, le=6000, description="Most details look-ups a process makes per minute."
    )
    callback_key: SecretStr | None = Field(
        None,
        description="Signs the `CustomField` of every SMS so that a forged status callback is "
        "refused. Default: derived from `api_token`.",
    )

    @property
    def is_configured(self) -> bool:
        return bool(self.account_sid and self.api_key and self.api_token)

    def signing_key(self) -> bytes:
        """The key for status callbacks' signed ``CustomField`` (see exosms.exotel.callbacks)."""
        from exosms.exotel.callbacks import key_from_secret

        secret = self.callback_key or self.api_token
        return key_from_secret(secret.get_secret_value()) if secret is not None else b""


class InboxSettings(BaseModel):
    """The inbox pages under /inbox and the JSON API under /api (``[inbox]``).

    Both are off until ``password_hash`` is set (`exosms password` or `exosms init` set it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    password_hash: str | None = Field(
        None,
        description="scrypt hash of the admin password, made by `exosms password`; never the "
        "password itself. Unset: the inbox and API are off (404).",
    )
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token for /api (`Authorization: Bearer ...`); made by "
        "`exosms password --api-token`. Unset: /api answers only a logged-in browser.",
    )
    session_hours: float = Field(
        12.0, gt=0, le=24 * 90, description="Hours a login lasts before asking again."
    )
    lockout_attempts: int = Field(
        5, ge=1, description="Failed logins from one address before it is locked out."
    )
    lockout_seconds: float = Field(
        900.0, ge=1, description="How long a locked-out address waits, and the failure window."
    )
    lockout_account_attempts: int = Field(
        50,
        ge=1,
        description="Failed logins against the account from all addresses together, in the "
        "same window, before logins are refused from everywhere (guesses spread over many "
        "addresses); a right password resets it.",
    )
    poll_seconds: float = Field(
        2.0, gt=0, le=60, description="How often open pages look for new messages."
    )

    @field_validator("password_hash")
    @classmethod
    def _is_hash(cls, value: str | None) -> str | None:
        if value is not None:
            from exosms.passwords import PasswordError, check_hash_format

            try:
                check_hash_format(value)
            except PasswordError as error:
                raise ValueError(str(error)) from None
        return value

    @property
    def enabled(self) -> bool:
        return self.password_hash is not None


EVENT_TYPES = (
    "sms.received",
    "sms.answered",
    "sms.delivery",
    "sms.opted_out",
    "sms.opted_in",
    "reply.held",
)
DestinationKind = Literal["webhook", "nats", "rabbitmq", "redis"]


class DestinationSettings(BaseModel):
    """One place every event goes (``[[forwarding.destinations]]``), with its filter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        ...,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="A short name (a-z, 0-9, - and _): in logs, `exosms events`, the API.",
    )
    kind: DestinationKind = Field(
        ..., description="`webhook`, `nats` (JetStream), `rabbitmq` or `redis` (Streams)."
    )
    url: SecretStr = Field(
        ...,
        description="Where: `https://...` for a webhook, `nats://host:4222`, "
        "`amqp://user:password@host/vhost`, `redis://host:6379/0` (kept secret: it may hold "
        "a password).",
    )
    secrets: list[SecretStr] = Field(
        [],
        description="webhook: `whsec_...` secrets to sign with (Standard Webhooks); two while "
        "rotating, the new one first. Required for a webhook.",
    )
    subject: str = Field(
        "exosms.{type}",
        description="nats: the subject (`{type}`: the event type, such as `sms.received`).",
    )
    stream: str = Field(
        "",
        description="nats: a JetStream stream to create for the subjects when missing (empty: "
        "it must exist); redis: the stream key (default `exosms:events`).",
    )
    exchange: str = Field(
        "exosms", description="rabbitmq: a durable topic exchange, declared if missing."
    )
    routing_key: str = Field(
        "{type}", description="rabbitmq: the routing key (`{type}`: the event type)."
    )
    max_len: int = Field(
        1_000_000, ge=1, description="redis: the stream is trimmed to about this many entries."
    )
    timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="The most one delivery may take before it is retried."
    )
    events: list[str] = Field([], description="Only these event types (empty: every type).")
    recipients: list[str] = Field(
        [], description="Only messages to these Exotel numbers (empty: every number)."
    )
    rules: list[str] = Field([], description="Only messages answered by these rules.")
    outcomes: list[str] = Field([], description="Only messages with these outcomes.")

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in EVENT_TYPES:
                raise ValueError(f"{name!r} is not an event type ({', '.join(EVENT_TYPES)})")
        return value

    @model_validator(mode="after")
    def _complete(self) -> DestinationSettings:
        url = self.url.get_secret_value()
        schemes = {
            "webhook": ("http://", "https://"),
            "nats": ("nats://", "tls://"),
            "rabbitmq": ("amqp://", "amqps://"),
            "redis": ("redis://", "rediss://", "unix://"),
        }[self.kind]
        if not url.startswith(schemes):
            raise ValueError(f"{self.name}: a {self.kind} url starts with {' or '.join(schemes)}")
        if self.kind == "webhook":
            if not self.secrets:
                raise ValueError(f'{self.name}: a webhook needs secrets = ["whsec_..."]')
            for secret in self.secrets:
                if not secret.get_secret_value().startswith("whsec_"):
                    raise ValueError(f"{self.name}: webhook secrets start with whsec_")
        return self


class NotifySettings(BaseModel):
    """Messages that need a person, sent to people through Apprise (``[notify]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: list[SecretStr] = Field(
        [],
        description="Apprise URLs (`mailto://...`, `tgram://...`, `slack://...`, `json://...`)"
        " that get the messages no one is assigned to. Empty, with no `people`: off.",
    )
    people: dict[str, SecretStr] = Field(
        {},
        description='An Apprise URL per inbox user (`priya = "mailto://..."`): a message in'
        " a conversation assigned to them goes to them instead of `urls`.",
    )
    batch_seconds: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="How often the waiting messages are sent, together, one notification per"
        " person.",
    )
    no_reply: bool = Field(
        True,
        description="Notify of every message that got no reply (no rule matched, the handler"
        " failed, the DLT check refused it); messages held by a guard (opt-outs, caps, loops)"
        " are not. Rules marked `notify = true` notify whatever they reply.",
    )


class ForwardingSettings(BaseModel):
    """Every event forwarded to the business's own systems (``[forwarding]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    destinations: list[DestinationSettings] = Field(
        [], description="Where events go (`[[forwarding.destinations]]`); none: kept only."
    )
    poll_seconds: float = Field(
        0.2, gt=0, le=60, description="How often each process looks for events to deliver."
    )
    max_attempts: int = Field(
        100, ge=1, description="Deliveries tried before an event is dead-lettered."
    )
    max_age_seconds: float = Field(
        86_400.0, gt=0, description="Age past which an undelivered event is dead-lettered."
    )
    batch: int = Field(
        200, ge=1, le=5000, description="Events one process takes per destination at a time."
    )
    concurrency: int = Field(
        16, ge=1, le=256, description="Deliveries in flight per destination and process."
    )
    run: Literal["process", "server", "external"] = Field(
        "process",
        description="Who delivers: `process`, one `exosms forward` process that `exosms serve` "
        "starts and restarts beside it (forwarding never takes CPU from replies); `server`, "
        "each server process itself (one process, but it slows replies under load); "
        "`external`, only the `exosms forward` processes you run (other machines sharing "
        "PostgreSQL, say).",
    )
    lease_seconds: float = Field(
        60.0,
        ge=2,
        le=3600,
        description="How long a process holds the events it is delivering; after a crash, "
        "another process takes them once this runs out.",
    )

    @field_validator("destinations")
    @classmethod
    def _unique_names(cls, value: list[DestinationSettings]) -> list[DestinationSettings]:
        names = [d.name for d in value]
        if len(set(names)) != len(names):
            raise ValueError("destination names must be unique")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_a_delivery(self) -> ForwardingSettings:
        for destination in self.destinations:
            if destination.timeout_seconds + 1 > self.lease_seconds:
                raise ValueError(
                    f"{destination.name}: timeout_seconds must be at least 1 s shorter than"
                    " [forwarding] lease_seconds"
                )
        return self


class MetricsSettings(BaseModel):
    """Prometheus metrics at ``/metrics`` (``[metrics]``, docs/metrics.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretStr | None = Field(
        None,
        description="The bearer token a scraper sends (`Authorization: Bearer <token>`)."
        " Unset: `/metrics` is off (404) and nothing is counted.",
    )

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use at least 16 characters (`exosms init` makes one)")
        return value

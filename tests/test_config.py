"""Settings: sources, precedence, validation, and that every setting is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from exosms.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_give_a_working_server() -> None:
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.database_url == "sqlite:///exosms.db"
    assert settings.applet_path == "/exotel/sms"
    assert settings.reply_deadline == 2.0
    assert settings.max_body_chars == 10_000


def test_toml_then_environment_then_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "exosms.toml"
    config.write_text('port = 9001\nhost = "0.0.0.0"\nfallback_reply = "Sorry"\n')
    assert load_settings(config).port == 9001
    monkeypatch.setenv("EXOSMS_PORT", "9002")
    assert load_settings(config).port == 9002
    assert load_settings(config, port=9003).port == 9003
    assert load_settings(config).host == "0.0.0.0"
    assert load_settings(config).fallback_reply == "Sorry"


def test_exosms_toml_in_the_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exosms.toml").write_text("reply_deadline = 1.5\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().reply_deadline == 1.5


@pytest.mark.parametrize(
    "toml, problem",
    [
        ("port = 'eighty'", "port: Input should be a valid integer"),
        ("reply_deadline = 0", "reply_deadline: Input should be greater than 0"),
        ("applet_path = 'exotel'", "applet_path: Value error, must start with '/'"),
        ("colour = 'blue'", "colour: Extra inputs are not permitted"),
        ("port = [", "cannot read"),
    ],
)
def test_bad_settings_say_what_and_where(tmp_path: Path, toml: str, problem: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml + "\n")
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert problem in str(error.value)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def _all_settings() -> list[tuple[str, str, str | None]]:
    from pydantic import BaseModel

    found = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub, subfield in annotation.model_fields.items():
                found.append(
                    (f"{name}.{sub}", f"EXOSMS_{name.upper()}__{sub.upper()}", subfield.description)
                )
        else:
            found.append((name, f"EXOSMS_{name.upper()}", field.description))
    return found


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "docs" / "settings.md").read_text()
    for name, env, description in _all_settings():
        assert f"`{name}`" in docs, f"docs/settings.md does not list {name}"
        if name != "rules":  # inline [[rules]] live in the TOML file only
            assert f"`{env}`" in docs, f"docs/settings.md lacks {env}"
        assert description, f"setting {name} has no help text"


def test_every_destination_setting_is_documented() -> None:
    from exosms.settings_sections import DestinationSettings

    docs = (ROOT / "docs" / "forwarding.md").read_text()
    for name, field in DestinationSettings.model_fields.items():
        assert f"| `{name}` |" in docs, f"docs/forwarding.md does not list {name}"
        assert field.description, f"destination setting {name} has no help text"


def test_destinations_survive_the_trip_to_worker_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from exosms.config import secret_values, settings_as_environment

    hook = {
        "name": "crm",
        "kind": "webhook",
        "url": "https://crm.example.in/sms",
        "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    }
    original = load_settings(forwarding={"destinations": [hook]})
    assert "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" in secret_values(original)
    for key, value in settings_as_environment(original).items():
        monkeypatch.setenv(key, value)
    assert load_settings() == original


@pytest.mark.parametrize(
    "destination, reason",
    [
        ({"name": "crm", "kind": "webhook", "url": "https://x.in"}, "needs secrets"),
        ({"name": "crm", "kind": "webhook", "url": "https://x.in", "secrets": ["abc"]}, "whsec_"),
        ({"name": "q", "kind": "nats", "url": "http://x"}, "starts with nats://"),
        ({"name": "Bad Name", "kind": "redis", "url": "redis://x"}, "name"),
        ({"name": "q", "kind": "redis", "url": "redis://x", "events": ["sms.sent"]}, "event type"),
    ],
)
def test_a_wrong_destination_says_what_is_wrong(
    destination: dict[str, object], reason: str
) -> None:
    from exosms.config import ConfigError

    with pytest.raises((ConfigError, ValueError)) as raised:
        load_settings(forwarding={"destinations": [destination]})
    assert reason in str(raised.value)


def test_nested_settings_from_toml_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "exosms.toml"
    config.write_text('[dlt]\nmode = "warn"\nvar_max_len = 40\n')
    assert load_settings(config).dlt.mode == "warn"
    monkeypatch.setenv("EXOSMS_DLT__MODE", "enforce")
    settings = load_settings(config)
    assert (settings.dlt.mode, settings.dlt.var_max_len) == ("enforce", 40)


def test_settings_survive_the_trip_to_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    from exosms.config import settings_as_environment

    original = load_settings(port=9100, fallback_reply="Sorry", dlt={"mode": "off"})
    for key, value in settings_as_environment(original).items():
        monkeypatch.setenv(key, value)
    assert load_settings() == original

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


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "docs" / "settings.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"`{name}`" in docs, f"docs/settings.md does not list {name}"
        assert f"`EXOSMS_{name.upper()}`" in docs, f"docs/settings.md lacks EXOSMS_{name.upper()}"
        assert field.description, f"setting {name} has no help text"

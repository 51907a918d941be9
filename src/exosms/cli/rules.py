"""`exosms rules check` and `exosms rules test`."""

from __future__ import annotations

import asyncio
import logging.config
import sys
from pathlib import Path

import click

from exosms.cli.common import (
    CONFIG_OPTION,
    DATABASE_OPTION,
    _build_router,
    _config_path,
    _local_registry,
    _settings,
)
from exosms.store import StoredMessage


@click.group()
def rules() -> None:
    """The rules file: check it, and see which rule answers a message."""


@rules.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@CONFIG_OPTION
def rules_check(file: Path | None, config_file: Path | None) -> None:
    """Check FILE (default: the configured rules) and print every problem with its line."""
    from exosms.rules import RulesFile, context_for, load_rules

    settings = _settings(config_file)
    if file is not None:
        if not file.is_file():
            raise click.ClickException(f"{file} does not exist")
        found: RulesFile | None = RulesFile.from_path(file)
    else:
        found = load_rules(settings, _config_path(config_file))
    if found is None:
        raise click.ClickException(
            "no rules configured: set rules_file in exosms.toml or give a FILE"
        )
    problems = found.check(context_for(settings))
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem(s) in {found.source}")
        sys.exit(1)
    click.echo(f"{found.source}: {len(found.specs)} rules, no problems")


@rules.command("test")
@click.argument("text")
@click.option("--from", "sender", default="9052161119", show_default=True)
@click.option("--to", "recipient", default="56070", show_default=True)
@CONFIG_OPTION
@DATABASE_OPTION
def rules_test(
    text: str, sender: str, recipient: str, config_file: Path | None, database_url: str | None
) -> None:
    """Show which rule answers TEXT and the reply, without a server (nothing is stored)."""
    from exosms.exotel.caller import AppletSms
    from exosms.simulate import app_target, check_sms

    settings = _settings(config_file, database_url=database_url)
    router = _build_router(settings, _config_path(config_file))
    registry = _local_registry(settings)
    logging.getLogger("exosms").setLevel(logging.ERROR)  # the verdict is printed below

    async def run() -> tuple[str | None, StoredMessage | None]:
        async with app_target(router, config_file) as target:
            sms = AppletSms(sender=sender, recipient=recipient, body=text)
            check = await check_sms(target, sms, repeat=False, registry=registry)
            stored = await target.app.state.engine.store.lookup(sms.sms_sid)  # type: ignore[attr-defined]
            return check.reply, stored

    reply, stored = asyncio.run(run())
    rule = stored.rule if stored else None
    click.echo(f"rule:    {rule or '(none matched)'}")
    click.echo(f"outcome: {stored.outcome if stored else '-'}")
    click.echo(f"reply:   {reply if reply is not None else '(no reply)'}")
    if reply:
        from exosms.segments import segment

        parts = segment(reply)
        click.echo(f"parts:   {parts.encoding}, {parts.units} units, {parts.count} part(s)")
        if registry is not None:
            click.echo(f"DLT:     {registry.match(reply).describe()}")
    if stored is not None and stored.error:
        click.echo(f"error:   {stored.error}")

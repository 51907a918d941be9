"""`exosms rules check` and `exosms rules test`."""

from __future__ import annotations

import asyncio
import logging.config
import sys
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from exosms.config import Settings
    from exosms.rules import RulesFile


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
    warnings = fixed_reply_warnings(found, settings)
    for warning in warnings:
        click.echo(warning)
    if problems:
        click.echo(f"{len(problems)} problem(s) in {found.source}")
        sys.exit(1)
    noted = f", {len(warnings)} DLT warning(s)" if warnings else ""
    click.echo(f"{found.source}: {len(found.specs)} rules, no problems{noted}")


def fixed_reply_warnings(found: RulesFile | None, settings: Settings) -> list[str]:
    """A line for each fixed reply (a rule's reply without fields, the STOP and START
    confirmations, the fallback) that matches no imported DLT template: operators would
    drop it, and with the check enforcing it is never sent."""
    from exosms.rule_table import read_table
    from exosms.rules import template_fields

    registry = _local_registry(settings)
    if registry is None or not len(registry):
        return []
    fixed: list[tuple[str, str]] = []
    specs = found.specs if found is not None else []
    source = found.source if found is not None else ""
    for spec in specs:
        table, _ = read_table(spec.data)  # as the rules check reads it (checked or not)
        reply = table.reply
        if reply and not template_fields(reply):
            name = (table.name or table.keyword or f"rule{spec.number}").lower()
            fixed.append((f"{source}:{spec.line}: rule {name}", reply.format_map({})))
    guards = settings.guards
    fixed += [
        ("settings: [guards] optout_reply (the STOP confirmation)", guards.optout_reply),
        ("settings: [guards] optin_reply (the START confirmation)", guards.optin_reply),
        ("settings: fallback_reply", settings.fallback_reply or ""),
    ]
    warnings = []
    for where, text in fixed:
        if text:
            verdict = registry.match(text)
            if not verdict.matched:
                warnings.append(f"{where}: warning: matches no DLT template: {verdict.reason}")
    return warnings


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

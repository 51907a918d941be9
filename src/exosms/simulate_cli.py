"""Rendering for `exosms simulate`: the text a person reads, and the exit status."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click

from exosms.dlt import TemplateRegistry
from exosms.exotel.caller import AppletSms
from exosms.httpraw import Exchange, Unreachable
from exosms.simulate import (
    ERROR,
    SmsCheck,
    Target,
    UrlTarget,
    app_target,
    check_json,
    check_sms,
    many_json,
    run_many,
)
from exosms.testing import ScriptError, Turn, TurnResult, parse_script, run_script

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_UNREACHABLE = 2

_SHOWN_HEADERS = ("content-type", "content-length", "transfer-encoding", "location")


def _line(ex: Exchange, note: str = "") -> str:
    shown = ", ".join(f"{k}: {v}" for k, v in ex.headers if k in _SHOWN_HEADERS)
    return f"  {ex.method:<5} {ex.status}  {ex.elapsed_ms:7.1f} ms  {shown}{note}"


def render_check(target: Target, check: SmsCheck) -> str:
    sms = check.sms
    out = [
        f"exosms simulate: {target.name}",
        f"  SMS   SmsSid={sms.sms_sid} From={sms.sender} To={sms.recipient} Date={sms.date}",
        f"        Body: {sms.body!r}",
        _line(check.head),
        _line(check.get),
    ]
    if check.repeat is not None:
        same = (check.repeat.status, check.repeat.body) == (check.get.status, check.get.body)
        out.append(
            _line(check.repeat, "  (again: same answer)" if same else "  (again: DIFFERENT)")
        )
    out.append("The customer receives:")
    parts = check.segments
    if check.reply is None or parts is None:
        out.append("  (no reply)")
    else:
        out += ["  " + line for line in check.reply.splitlines() or [""]]
        plural = "part" if parts.count == 1 else "parts"
        out.append(f"  [{parts.encoding}, {parts.units} units, {parts.count} SMS {plural}]")
        if check.verdict is not None:
            out.append(f"  DLT: {check.verdict.describe()}")
    out.append(_render_violations(check.violations))
    return "\n".join(out)


def _render_violations(violations: list[Any]) -> str:
    if not violations:
        return "Checks: all passed."
    errors = sum(1 for v in violations if v.severity == ERROR)
    warnings = len(violations) - errors
    lines = [f"Checks: {errors} violation(s), {warnings} warning(s)."]
    for v in violations:
        mark = "✗" if v.severity == ERROR else "!"
        count = f" (x{v.count})" if hasattr(v, "count") else ""
        lines.append(f"  {mark} {v.code}{count}: {v.message}")
        lines.append(f"      fix: {v.fix}")
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def _target(
    url: str | None, app: str | None, config_file: Path | None, timeout: float
) -> AsyncIterator[Target]:
    if app is not None:
        async with app_target(app, config_file) as target:
            yield target
    else:
        assert url is not None
        yield UrlTarget(url, timeout=timeout)


def run(
    *,
    url: str | None,
    app: str | None,
    config_file: Path | None,
    sms: AppletSms,
    as_json: bool,
    budget: float,
    max_parts: int,
    repeat: int,
    concurrency: int,
    script: Path | None,
    timeout: float,
    registry: TemplateRegistry | None = None,
) -> int:
    """Run one simulation mode and print it; returns the exit status."""

    turns = None
    if script is not None:
        try:
            turns = parse_script(script.read_text(encoding="utf-8"))
        except (OSError, ScriptError) as error:
            raise click.ClickException(str(error)) from None

    async def go() -> int:
        async with _target(url, app, config_file, timeout) as target:
            if turns is not None:
                return await _script(target, turns, sms, as_json, budget, max_parts, registry)
            if repeat > 1:
                checks = await run_many(
                    target,
                    sms,
                    repeat,
                    concurrency,
                    budget=budget,
                    max_parts=max_parts,
                    registry=registry,
                )
                summary = many_json(target, checks)
                if as_json:
                    click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
                else:
                    click.echo(_render_many(summary))
                return EXIT_OK if summary["ok"] else EXIT_VIOLATION
            check = await check_sms(
                target, sms, budget=budget, max_parts=max_parts, registry=registry
            )
            if as_json:
                click.echo(json.dumps(check_json(target, check), ensure_ascii=False, indent=2))
            else:
                click.echo(render_check(target, check))
            return EXIT_OK if check.ok else EXIT_VIOLATION

    try:
        return asyncio.run(go())
    except Unreachable as error:
        if as_json:
            click.echo(
                json.dumps({"schema": "exosms.simulate/1", "error": str(error), "ok": False})
            )
        else:
            click.echo(f"exosms simulate: {error}", err=True)
        return EXIT_UNREACHABLE


def _render_many(summary: dict[str, Any]) -> str:
    class _V:
        def __init__(self, d: dict[str, Any]) -> None:
            self.__dict__.update(d)

    lat = summary["latency_ms"]
    out = [f"exosms simulate: {summary['target']}: {summary['sms_count']} SMS (HEAD + GET each)"]
    out.append("  latency ms      p50      p90      p99      max")
    for name in ("head", "get", "sms"):
        row = lat[name]
        out.append(
            f"  {name:<10} {row['p50']:8.1f} {row['p90']:8.1f} {row['p99']:8.1f} {row['max']:8.1f}"
        )
    out.append(_render_violations([_V(v) for v in summary["violations"]]))
    return "\n".join(out)


async def _script(
    target: Target,
    turns: list[Turn],
    template: AppletSms,
    as_json: bool,
    budget: float,
    max_parts: int,
    registry: TemplateRegistry | None,
) -> int:
    results = await run_script(
        target,
        turns,
        recipient=template.recipient,
        budget=budget,
        max_parts=max_parts,
        registry=registry,
    )
    ok = all(r.ok for r in results)
    if as_json:
        click.echo(json.dumps(_script_json(target, results, ok), ensure_ascii=False, indent=2))
    else:
        for r in results:
            mark = "✓" if r.ok else "✗"
            click.echo(f"{mark} {r.turn.sender} > {r.turn.body}")
            click.echo(f"    < {r.reply if r.reply is not None else '(no reply)'}")
            if not r.ok:
                click.echo("\n".join("    " + line for line in r.explain().splitlines()[1:]))
        passed = sum(1 for r in results if r.ok)
        click.echo(f"{passed} of {len(results)} turns as scripted.")
    return EXIT_OK if ok else EXIT_VIOLATION


def _script_json(target: Target, results: list[TurnResult], ok: bool) -> dict[str, Any]:
    return {
        "schema": "exosms.simulate/1",
        "target": target.name,
        "turns": [
            {
                "line": r.turn.line,
                "from": r.turn.sender,
                "body": r.turn.body,
                "expected": r.turn.expect,
                "regex": r.turn.is_regex,
                "checked": r.turn.is_checked,
                "reply": r.reply,
                "ok": r.ok,
                "violations": [v.as_dict() for v in r.check.violations],
            }
            for r in results
        ],
        "ok": ok,
    }

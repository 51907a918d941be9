"""Reloads while serving: DLT templates imported by another process, and the rules file
when it changes on disk or the process gets SIGHUP. A reload that fails leaves what runs
in place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from exosms.engine import ReplyEngine
from exosms.gate import DltGate
from exosms.loading import AppLoadError
from exosms.passwords import PasswordError, check_hash_format
from exosms.routing import Router
from exosms.rules import RulesError
from exosms.store import Store, StoreUnavailable

log = logging.getLogger("exosms")


async def watch_templates(
    store: Store, every: float, load: Callable[[], Awaitable[None]], gate: DltGate
) -> None:
    """`exosms dlt import` writes to the database; every process picks the change up."""
    version = await store.templates_version()
    while True:
        await asyncio.sleep(every)
        try:
            latest = await store.templates_version()
            if latest != version:
                await load()
                version = latest
                log.info("DLT templates reloaded: %d approved", len(gate.registry))
        except StoreUnavailable as error:
            log.warning("could not check for new DLT templates: %s", error)


async def watch_rules(
    engine: ReplyEngine, path: Path, rebuild: Callable[[], Router], every: float
) -> None:
    """Rebuild the router when ``path`` changes or the process gets SIGHUP; a rebuild that
    fails leaves the running router in place."""
    changed = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, changed.set)
    seen = _mtime(path)
    retiring: set[asyncio.Task[None]] = set()
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), every)
        now = _mtime(path)
        if not changed.is_set() and now == seen:
            continue
        changed.clear()
        seen = now
        try:
            old, engine.router = engine.router, await asyncio.to_thread(rebuild)
        except RulesError as error:
            for problem in error.problems:
                log.error("rules not reloaded: %s", problem)
            log.error("rules not reloaded: the previous rules stay in force")
        except AppLoadError as error:
            log.error("rules not reloaded: %s; the previous rules stay in force", error)
        else:
            log.info("rules reloaded from %s: %d rules", path, len(engine.router.rules))
            # Requests already routed by the old rules finish within the deadline.
            retiring.add(asyncio.create_task(_close_later(old, engine.deadline * 2 + 1)))
            retiring.difference_update({task for task in retiring if task.done()})


async def _close_later(router: Router, delay: float) -> None:
    await asyncio.sleep(delay)
    await router.aclose()


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


async def watch_password(
    path: Path, every: float, current: str | None, apply: Callable[[str | None], None]
) -> None:
    """Apply a new ``[inbox] password_hash`` from the settings file at ``path`` (written by
    ``exosms password`` while serving) without a restart; a file that does not read leaves
    the password in force."""
    import tomllib

    seen = _mtime(path)
    while True:
        await asyncio.sleep(every)
        now = _mtime(path)
        if now == seen:
            continue
        seen = now
        try:
            data = tomllib.loads(await asyncio.to_thread(path.read_text, encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            log.error("settings not re-read (%s): the inbox password stays as it was", error)
            continue
        inbox = data.get("inbox")
        stored = inbox.get("password_hash") if isinstance(inbox, dict) else None
        if stored is not None:
            try:
                check_hash_format(str(stored))
            except PasswordError as error:
                log.error("inbox password not changed: %s", error)
                continue
        if isinstance(stored, str | None) and stored != current:
            current = stored
            apply(stored)
            log.info("inbox password changed in %s: every browser is signed out", path.name)

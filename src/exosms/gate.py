"""The last check before a reply leaves: its SMS parts, and the DLT template it must match."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from exosms.dlt import TemplateRegistry, Verdict
from exosms.outcomes import Outcome
from exosms.result import Result
from exosms.segments import segment

log = logging.getLogger("exosms.engine")


@dataclass
class DltGate:
    """Checks every reply before it is sent: SMS parts, and DLT templates by ``mode``."""

    registry: TemplateRegistry = field(default_factory=TemplateRegistry)
    mode: str = "auto"  # auto | off | warn | enforce
    max_parts: int = 7

    @property
    def effective_mode(self) -> str:
        """The mode in force: ``auto`` enforces once templates are imported, else warns."""
        if self.mode == "auto":
            return "enforce" if len(self.registry) else "warn"
        return self.mode

    def verdict(self, text: str) -> Verdict | None:
        """The DLT verdict on ``text`` (``None`` when the check is off)."""
        return None if self.effective_mode == "off" else self.registry.match(text)

    def is_sendable(self, text: str) -> bool:
        """Whether ``text`` would pass :meth:`check` as it is."""
        if segment(text).count > self.max_parts:
            return False
        verdict = self.verdict(text)
        return self.effective_mode != "enforce" or verdict is None or verdict.matched

    def check(self, result: Result, fallback: str | None, sid: str) -> Result:
        """``result`` with its reply's parts and template, or with ``fallback`` (when that one
        passes) in place of a reply that may not be sent, and the reason why."""
        if result.reply is None:
            return result
        parts = segment(result.reply)
        verdict = self.verdict(result.reply)
        reason = None if verdict is None else (verdict.reason or "; ".join(verdict.warnings))
        refused = None
        if parts.count > self.max_parts:
            refused = Outcome.TOO_LONG
            why = f"reply needs {parts.count} SMS parts; at most {self.max_parts} are sent"
        elif self.effective_mode == "enforce" and verdict is not None and not verdict.matched:
            refused = Outcome.DLT_REFUSED
            why = f"DLT: {verdict.reason}"
        elif verdict is not None and not verdict.matched and len(self.registry):
            log.warning("sid=%s reply matches no DLT template (sent anyway): %s", sid, reason)
        if refused is None:
            return replace(
                result,
                encoding=parts.encoding,
                units=parts.units,
                parts=parts.count,
                template_id=verdict.template_id if verdict else None,
                dlt_reason=reason or None,
            )
        log.warning("sid=%s reply not sent: %s", sid, why)
        replacement = fallback if fallback and self.is_sendable(fallback) else None
        sent = segment(replacement) if replacement else None
        sent_verdict = self.verdict(replacement) if replacement else None
        return replace(
            result,
            reply=replacement,
            refused_reply=result.reply,  # kept: the text to register, or to shorten
            outcome=refused,
            error=why if result.error is None else f"{result.error}; {why}",
            encoding=sent.encoding if sent else None,
            units=sent.units if sent else None,
            parts=sent.count if sent else None,
            template_id=sent_verdict.template_id if sent_verdict else None,
            dlt_reason=reason,
        )

"""The inbox's overview: a week of messages in hours, counts, latency percentiles, words.

Hours that ended more than two hours ago are read once and kept per process; only the
recent hours are read again, so a million messages cost one slow first read. Latencies are
kept as log-scale histograms (buckets about 4% wide), so percentiles of many hours combine.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.store.textsql import fetch_all


@dataclass(frozen=True, slots=True)
class Stats:
    """The overview: the last ``days`` days, in hours of the display time zone."""

    since: float
    hours: list[float]  # the start of each hour, epoch seconds
    per_hour: dict[str, list[int]]  # outcome -> count in each hour
    outcomes: dict[str, int]
    latency_ms: dict[str, float | None]  # p50, p90, p99 of receipt-to-answer time
    handler_ms: dict[str, float | None]
    top_keywords: list[tuple[str, int]]
    top_rules: list[tuple[str, int]]
    total: int
    computed_ms: float = 0.0


class Overview:
    """Computes :class:`Stats` over the store's async SQLAlchemy engine, and caches them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._stats_cache: tuple[float, tuple[int, float], Stats] | None = None
        self._stats_lock = asyncio.Lock()
        self._hours: dict[float, _Hour] = {}
        self._hours_offset: float | None = None

    async def stats(
        self, *, days: int = 7, utc_offset: float = 0.0, max_age: float = 30.0
    ) -> Stats:
        """The overview, computed at most once per ``max_age`` seconds per process."""
        now = time.time()
        key = (days, utc_offset)
        cached = self._stats_cache
        if cached is not None and cached[1] == key and now - cached[0] < max_age:
            return cached[2]
        async with self._stats_lock:
            cached = self._stats_cache
            if cached is not None and cached[1] == key and time.time() - cached[0] < max_age:
                return cached[2]
            stats = await self._compute_stats(days, utc_offset)
            self._stats_cache = (time.time(), key, stats)
            return stats

    async def _compute_stats(self, days: int, utc_offset: float) -> Stats:
        """Hours that ended more than two hours ago are read once and kept (per process);
        only the recent hours are read again. A million messages cost one slow first read."""
        started = time.perf_counter()
        now = time.time()
        # Whole hours of the display zone (India is UTC+5:30: its hours start at :30 UTC).
        this_hour = (now + utc_offset) // 3600 * 3600 - utc_offset
        first = this_hour - (days * 24 - 1) * 3600
        hours = [first + 3600 * i for i in range(days * 24)]
        if self._hours_offset != utc_offset:
            self._hours = {}
            self._hours_offset = utc_offset
        settled = this_hour - 2 * 3600  # older hours no longer change (answers take seconds)
        missing = [hour for hour in hours if hour not in self._hours or hour >= settled]
        if missing:
            fresh = await self._read_hours(min(missing), utc_offset)
            for hour in missing:
                self._hours[hour] = fresh.get(hour, _Hour())
        for hour in [hour for hour in self._hours if hour < first]:
            del self._hours[hour]
        per_hour: dict[str, list[int]] = {}
        outcomes: Counter[str] = Counter()
        latency: Counter[int] = Counter()
        handler: Counter[int] = Counter()
        words: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        for index, hour in enumerate(hours):
            data = self._hours[hour]
            for outcome, count in data.outcomes.items():
                per_hour.setdefault(outcome, [0] * len(hours))[index] += count
            outcomes.update(data.outcomes)
            latency.update(data.latency)
            handler.update(data.handler)
            words.update(data.words)
            rules.update(data.rules)
        return Stats(
            since=first,
            hours=hours,
            per_hour=per_hour,
            outcomes=dict(outcomes),
            latency_ms=_histogram_percentiles(latency),
            handler_ms=_histogram_percentiles(handler),
            top_keywords=sorted(words.items(), key=lambda item: (-item[1], item[0]))[:10],
            top_rules=sorted(rules.items(), key=lambda item: (-item[1], item[0]))[:10],
            total=sum(outcomes.values()),
            computed_ms=(time.perf_counter() - started) * 1000,
        )

    async def _read_hours(self, since: float, utc_offset: float) -> dict[float, _Hour]:
        bucket = (
            "CAST(FLOOR((received_at + :offset) / 3600) AS BIGINT)"
            if self.postgres
            else "CAST((received_at + :offset) / 3600 AS INTEGER)"
        )
        word = (
            "upper(split_part(btrim(body), ' ', 1))"
            if self.postgres
            else "upper(CASE WHEN instr(trim(body), ' ') > 0"
            " THEN substr(trim(body), 1, instr(trim(body), ' ') - 1) ELSE trim(body) END)"
        )
        rows = await fetch_all(
            self.engine,
            f"SELECT {bucket}, CASE WHEN state = 'done' THEN outcome ELSE 'pending' END,"
            " (answered_at - received_at) * 1000, handler_ms, rule,"
            f" {word} FROM messages WHERE received_at >= :since",
            since=since,
            offset=utc_offset,
        )
        # Counting a week of messages is CPU work: a thread, so answers keep flowing meanwhile.
        return await asyncio.to_thread(_count_hours, rows, utc_offset)


@dataclass(slots=True)
class _Hour:
    """One hour of the overview: counts, latency histograms, first words and rules."""

    outcomes: Counter[str] = field(default_factory=Counter)
    latency: Counter[int] = field(default_factory=Counter)
    handler: Counter[int] = field(default_factory=Counter)
    words: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)


_STEPS_PER_DOUBLING = 16  # histogram buckets grow by 2^(1/16): about 4% wide


def _count_hours(rows: Sequence[Any], utc_offset: float) -> dict[float, _Hour]:
    found: dict[float, _Hour] = {}
    for bucket_value, outcome, latency, handler_ms, rule, first_word in rows:
        hour = int(bucket_value) * 3600 - utc_offset
        data = found.get(hour)
        if data is None:
            data = found[hour] = _Hour()
        data.outcomes[outcome or "pending"] += 1
        if latency is not None:
            data.latency[_bucket(latency)] += 1
        if handler_ms is not None:
            data.handler[_bucket(handler_ms)] += 1
        if rule is not None:
            data.rules[rule] += 1
        if first_word:
            data.words[first_word[:40]] += 1
    return found


def _bucket(ms: float) -> int:
    return round(math.log2(max(ms, 0.001)) * _STEPS_PER_DOUBLING)


def _histogram_percentiles(histogram: Counter[int]) -> dict[str, float | None]:
    """p50, p90 and p99 from a histogram of :func:`_bucket` values (within about 2%)."""
    total = sum(histogram.values())
    result: dict[str, float | None] = {"p50": None, "p90": None, "p99": None}
    if not total:
        return result
    ordered = sorted(histogram.items())
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        rank = q * total
        seen = 0
        for bucket, count in ordered:
            seen += count
            if seen >= rank:
                result[name] = round(2 ** (bucket / _STEPS_PER_DOUBLING), 3)
                break
    return result

"""Outcome is one list: every member is labelled, coloured, filterable and in the OpenAPI."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from starlette.datastructures import QueryParams

from exosms.outcomes import STORED_OUTCOMES, Outcome
from exosms.store.inbox import OUTCOMES
from exosms.web.filters import parse_filters
from exosms.web.openapi import openapi_document
from exosms.web.present import OUTCOME_COLOURS, OUTCOME_LABELS


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_outcome_has_a_label_and_a_colour(outcome: Outcome) -> None:
    assert OUTCOME_LABELS[outcome].strip()
    assert OUTCOME_COLOURS[outcome].startswith("#")


@pytest.mark.parametrize("outcome", STORED_OUTCOMES)
def test_every_stored_outcome_can_be_filtered_in_the_inbox_and_the_api(outcome: Outcome) -> None:
    assert outcome in OUTCOMES
    filters = parse_filters(QueryParams({"outcome": outcome.value}), ZoneInfo("Asia/Kolkata"))
    assert filters.outcome == outcome
    document = openapi_document()
    parameters = document["paths"]["/api/messages"]["get"]["parameters"]
    enum = next(p for p in parameters if p["name"] == "outcome")["schema"]["enum"]
    assert outcome.value in enum


def test_a_replayed_answer_is_never_a_stored_outcome() -> None:
    assert Outcome.REPLAYED not in STORED_OUTCOMES
    assert len(set(Outcome)) == len(STORED_OUTCOMES) + 1

"""DLT template matching and rendering, against ../shared/vectors/dlt-match.json and more."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exosms import Reply
from exosms.dlt import Template, TemplateError, TemplateRegistry, tokenize, using

VECTORS = json.loads(
    (Path(__file__).resolve().parent / "data" / "dlt-match.json").read_text(encoding="utf-8")
)
TID = "1107161234567890123"


def registry(content: str, **extra: object) -> TemplateRegistry:
    return TemplateRegistry([Template(TID, content, **extra)])  # type: ignore[arg-type]


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_vectors(case: dict[str, object]) -> None:
    reg = registry(
        str(case["template"]),
        url_whitelist=tuple(case["url_whitelist"]),  # type: ignore[arg-type]
        cbn_whitelist=tuple(case["cbn_whitelist"]),  # type: ignore[arg-type]
    )
    verdict = reg.match(str(case["message"]))
    assert verdict.matched is case["matches"], verdict.reason
    if not verdict.matched:
        assert verdict.closest_id == TID
        assert "differs at character" in verdict.reason


@pytest.mark.parametrize(
    "message, where",
    [
        (
            "Dear Ram, your order 2345 has been shipped. Regards XYZ",
            "character 56: expected '.', got end of text",
        ),
        (
            "Dear Ram, your order 2345 has been  shipped. Regards XYZ.",
            "character 36: expected 's', got ' '",
        ),
        (
            "dear Ram, your order 2345 has been shipped. Regards XYZ.",
            "character 1: expected 'D', got 'd'",
        ),
    ],
)
def test_the_reason_names_the_first_difference(message: str, where: str) -> None:
    reg = registry("Dear {#var#}, your order {#var#} has been shipped. Regards XYZ.")
    verdict = reg.match(message)
    assert verdict.reason == f"no template matches; closest is {TID}: differs at {where}"


def test_tags_that_are_not_variables_are_literal_text() -> None:
    for literal in ("{#VAR#}", "{# var #}", "{#var1#}", "##var##"):
        tokens = tokenize(f"Code {literal} -ACME")
        assert tokens == [f"Code {literal} -ACME"]
        assert registry(f"Code {literal} -ACME").match(f"Code {literal} -ACME").matched


def test_typed_tags() -> None:
    reg = TemplateRegistry(
        [
            Template("1107000000000000001", "OTP {#numeric#} -ACME"),
            Template("1107000000000000002", "Ref {#alp#} -ACME"),
            Template("1107000000000000003", "Call {#cbn#} -ACME", cbn_whitelist=("08088919888",)),
            Template("1107000000000000004", "Mail {#email#} -ACME"),
            Template(
                "1107000000000000005",
                "Link {#urlott#} -ACME",
                url_whitelist=("https://app.acme.in/",),
            ),
        ]
    )
    assert reg.match("OTP 123456 -ACME").matched
    assert not reg.match("OTP 12 34 -ACME").matched
    assert reg.match("Ref AB12cd -ACME").matched
    assert not reg.match("Ref AB-12 -ACME").matched
    assert reg.match("Call +918088919888 -ACME").matched
    assert not reg.match("Call +919999999999 -ACME").matched
    assert reg.match("Mail help@acme.in -ACME").matched
    assert not reg.match("Mail help-at-acme -ACME").matched
    assert reg.match("Link https://app.acme.in/x?y=1 -ACME").matched
    assert not reg.match("Link https://app.evil.in/x -ACME").matched


def test_a_plain_var_holding_a_url_matches_with_a_warning() -> None:
    verdict = registry("Visit {#var#} -ACME").match("Visit https://acme.in/x -ACME")
    assert verdict.matched
    assert "likely blocked" in verdict.warnings[0]


def test_crlf_equals_lf_but_nothing_is_trimmed() -> None:
    reg = registry("Hello {#var#}\nRegards ACME\n")
    assert reg.match("Hello Ram\r\nRegards ACME\r\n").matched
    assert not reg.match("Hello Ram\nRegards ACME").matched  # the trailing newline is text
    assert not registry("Hi {#var#} -ACME").match("Hi Ra\nm -ACME").matched  # no newline in var


def test_the_most_specific_template_wins() -> None:
    reg = TemplateRegistry(
        [
            Template("1107000000000000001", "Your order {#var#} -ACME"),
            Template("1107000000000000002", "Your order {#var#} has shipped -ACME"),
        ]
    )
    assert reg.match("Your order 12 has shipped -ACME").template_id == "1107000000000000002"
    assert reg.match("Your order 12 is late -ACME").template_id == "1107000000000000001"


def test_templates_starting_with_a_variable_are_found() -> None:
    reg = registry("{#var#} is your OTP. -ACME")
    assert reg.match("4821 is your OTP. -ACME").matched


def test_unapproved_templates_never_match() -> None:
    reg = TemplateRegistry([Template(TID, "Hello -ACME", status="Rejected")])
    assert len(reg) == 0
    assert reg.match("Hello -ACME").reason == "no approved DLT templates are registered"


def test_configurable_variable_length() -> None:
    reg = TemplateRegistry([Template(TID, "Hi {#var#} -ACME")], var_max_len=40)
    assert reg.match("Hi " + "x" * 40 + " -ACME").matched
    assert not reg.match("Hi " + "x" * 41 + " -ACME").matched


def test_render_fills_in_order_and_refuses_bad_values() -> None:
    reg = TemplateRegistry(
        [
            Template(
                TID, "Dear {#var#}, your order {#numeric#} has shipped. -ACME", name="shipped"
            ),
        ]
    )
    with using(reg):
        assert Reply.template(TID, name="Ravi", order="12").text == (
            "Dear Ravi, your order 12 has shipped. -ACME"
        )
        assert Reply.template("shipped", "Ravi", "12").text.startswith("Dear Ravi")
        with pytest.raises(TemplateError, match="does not fit"):
            Reply.template(TID, name="Ravi", order="twelve")
        with pytest.raises(TemplateError, match="at most 30 characters"):
            Reply.template(TID, name="R" * 31, order="12")
        with pytest.raises(TemplateError, match="has 2 variable"):
            Reply.template(TID, name="Ravi")
        with pytest.raises(TemplateError, match="no approved DLT template"):
            Reply.template("1107000000000000999", "x")
    with pytest.raises(TemplateError, match="no DLT template registry is active"):
        Reply.template(TID, "Ravi", "12")


_static = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="{}#\r"), min_size=1, max_size=20
)
_value = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.tuples(_static, st.sampled_from(["var", "numeric", "alp"])), min_size=1, max_size=3
    ),
    tail=_static,
    data=st.data(),
)
def test_rendering_a_template_with_valid_values_always_matches_it(
    pieces: list[tuple[str, str]], tail: str, data: st.DataObject
) -> None:
    content = "".join(f"{static}{{#{tag}#}}" for static, tag in pieces) + tail
    reg = registry(content)
    values = []
    for _, tag in pieces:
        if tag == "numeric":
            values.append(data.draw(st.text(alphabet="0123456789", min_size=1, max_size=30)))
        elif tag == "alp":
            values.append(data.draw(st.text(alphabet="abcXYZ019", min_size=1, max_size=30)))
        else:
            values.append(data.draw(_value))
    text = reg.render(TID, *values)
    assert reg.match(text).template_id == TID


def test_templates_alike_but_for_their_end_are_told_apart() -> None:
    # Every template begins with a slot and shares a long middle: only the end differs.
    middle = ", your order {#numeric#} from ACME Retail Private Limited will be delivered by"
    registry = TemplateRegistry(
        Template(f"1207{n:015d}", f"{{#var#}}{middle} courier {n} on {{#var#}}. -ACME")
        for n in range(300)
    )
    filled = middle.replace("{#numeric#}", "1234")
    assert registry.match(f"Ravi{filled} courier 217 on Monday. -ACME").template_id == (
        f"1207{217:015d}"
    )
    missed = registry.match(f"Ravi{filled} courier 217 on Monday. -ACMX")
    assert not missed.matched and missed.closest_id == f"1207{217:015d}"
    assert "expected 'E', got 'X'" in missed.reason


def test_a_template_of_slots_and_punctuation_is_always_a_candidate() -> None:
    registry = TemplateRegistry([Template("1107000000000000001", "{#var#}.{#var#}")])
    assert registry.match("Ravi.Kumar").matched
    assert not registry.match("Ravi Kumar").matched


def test_of_two_equally_specific_templates_the_first_imported_wins_in_every_process() -> None:
    import os
    import subprocess
    import sys

    program = (
        "from exosms.dlt import Template, TemplateRegistry\n"
        "r = TemplateRegistry([Template('1107000000000000002', 'Order {#var#} ready -ACME'),"
        " Template('1107000000000000001', 'Order 12 re{#var#}y -ACME')])\n"
        "print(r.match('Order 12 ready -ACME').template_id)\n"
    )
    for seed in ("1", "2", "3", "4"):  # string hashing, and so a set's order, differs by seed
        chosen = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        ).stdout.strip()
        assert chosen == "1107000000000000002"

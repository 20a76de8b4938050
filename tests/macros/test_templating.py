"""Placeholders: filled from a whitelist of plain values, in the customer's language, in a sandbox
that reaches nothing else and refuses what it does not know when a text is saved."""

from __future__ import annotations

import pytest

from servicedesk.core.errors import ApplicationError
from servicedesk.macros.templating import (
    TEMPLATE_MAX,
    sample_values,
    template_check,
    template_render,
    translation_pick,
)


def test_placeholders_are_filled_from_the_values():
    text = template_render(
        'Hello {{ customer.first_name|default:"there" }}, about {{ ticket.reference }} ({{ ticket.status }}). '
        "{{ agent.first_name }}",
        sample_values(),
    )
    assert text == "Hello Ada, about SD-1001 (Open). Sam"


def test_an_empty_value_takes_its_default():
    values = sample_values()
    values["customer"]["first_name"] = ""
    assert template_render('Hi {{ customer.first_name|default:"there" }}!', values) == "Hi there!"


def test_plain_text_is_not_escaped():
    values = sample_values()
    values["ticket"]["subject"] = "Tom & Jerry <3"
    assert template_render("{{ ticket.subject }}", values) == "Tom & Jerry <3"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ticket.customer.user.password }}",
        "{{ customer.user.password }}",
        "{{ agent.user.password }}",
        "{{ settings.SECRET_KEY }}",
        "{{ request.user }}",
        "{{ ticket.objects }}",
    ],
)
def test_nothing_beyond_the_whitelist_is_reachable(source):
    assert template_render(source, sample_values()) == ""


def test_the_values_cannot_be_changed_by_a_text():
    assert (
        template_render("{{ customer.clear }}{{ customer.pop }}{{ customer.name }}", sample_values()) == "Ada Lovelace"
    )


@pytest.mark.parametrize(
    "source, reason",
    [
        ("{% if %}", "not valid"),
        ("{% if customer.name %}unclosed", "Unclosed tag"),
        ("{% load static %}", "'load'"),
        ("{% debug %}", "'debug'"),
        ('{% include "desk/base.html" %}', "'include'"),
        ('{% url "desk:inbox" %}', "'url'"),
        ("{% csrf_token %}", "'csrf_token'"),
        ("{% for c in ticket.subject %}{{ c }}{% endfor %}", "'for'"),
        ('{{ ticket.subject|center:"999999999" }}', "center"),
        ("{{ ticket.subject|add:ticket.subject }}", "add"),
        ("{{ ticket.subject.__class__ }}", "underscores"),
        ("{{ x|nosuchfilter }}", "nosuchfilter"),
    ],
)
def test_a_text_that_cannot_be_used_is_refused_with_the_reason(source, reason):
    with pytest.raises(ApplicationError) as refused:
        template_check(source)
    assert reason in refused.value.message


def test_a_text_too_long_is_refused():
    with pytest.raises(ApplicationError, match="at most"):
        template_check("x" * (TEMPLATE_MAX + 1))


def test_the_allowed_tags_and_filters_work():
    source = (
        "{% if customer.first_name %}Dear {{ customer.first_name|upper }}{% else %}Hello{% endif %}"
        "{% with ref=ticket.reference %} [{{ ref|lower }}]{% endwith %} {{ ticket.subject|truncatechars:4 }}"
    )
    template_check(source)
    assert template_render(source, sample_values()) == "Dear ADA [sd-1001] Sam…"


@pytest.mark.parametrize(
    "language, expected",
    [
        ("zh-hans", "中文"),
        ("zh-Hans", "中文"),
        ("zh", "中文"),
        ("zh_CN", "中文"),
        ("en", "English"),
        ("fr", "English"),
        ("", "English"),
    ],
)
def test_the_translation_of_the_customers_language_else_the_default(language, expected):
    assert translation_pick("English", {"zh-hans": "中文"}, language) == expected


def test_an_empty_translation_falls_back_to_the_default():
    assert translation_pick("English", {"zh-hans": ""}, "zh-hans") == "English"

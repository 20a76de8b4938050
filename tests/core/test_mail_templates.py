"""The mail engine renders as the pages' engine does, with only the tag libraries it is given."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.template import TemplateSyntaxError
from django.template.loader import render_to_string
from django.test import override_settings
from django.utils import translation

from servicedesk.core import mail_templates
from servicedesk.core.mail_templates import mail_render

ACK_CONTEXT = {
    "ticket": SimpleNamespace(reference="SD-4242", subject="Printer <on fire> & smoking"),
    "customer_name": "Dora <Lind>",
    "due": datetime(2026, 12, 7, 9, 30, tzinfo=UTC),
    "zone_name": "UTC",
    "link": "https://desk.example/help/tickets/SD-4242/?token=a&b",
    "closed": False,
}


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_acknowledgement_reads_as_the_pages_engine_renders_it(language):
    with translation.override(language):
        ours = mail_render("tickets/acknowledgement.txt", ACK_CONTEXT)
        pages = render_to_string("tickets/acknowledgement.txt", ACK_CONTEXT)
    assert ours == pages
    # Plain text: nothing escaped.
    assert "Printer <on fire> & smoking" in ours and "Dora <Lind>" in ours
    assert "SD-4242" in ours and "?token=a&b" in ours
    if language == "zh-hans":
        assert "您好" in ours and "Dora <Lind>" in ours


def test_a_library_the_caller_did_not_name_is_refused(tmp_path):
    (tmp_path / "loads_more.txt").write_text("{% load static %}{% static 'x.css' %}")
    (tmp_path / "escaped.txt").write_text("{{ value }}")
    pages = {"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [tmp_path], "APP_DIRS": True}
    with override_settings(TEMPLATES=[pages]):
        with pytest.raises(TemplateSyntaxError, match="static"):
            mail_render("loads_more.txt", {})
        # Autoescaping stays on unless a template turns it off.
        assert mail_render("escaped.txt", {"value": "<b>"}) == "&lt;b&gt;"
        # Given the library, the same template renders.
        assert mail_render("loads_more.txt", {}, libraries={"static": "django.templatetags.static"}).endswith("x.css")


def test_a_change_of_the_template_settings_starts_a_new_engine(tmp_path):
    (tmp_path / "hello.txt").write_text("hello from {{ where }}")
    before = mail_templates._engine(tuple(sorted(mail_templates.MAIL_LIBRARIES.items())))
    with override_settings(
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [tmp_path]}]
    ):
        assert mail_render("hello.txt", {"where": "a test"}) == "hello from a test"
    after = mail_templates._engine(tuple(sorted(mail_templates.MAIL_LIBRARIES.items())))
    assert after is not before

"""The error pages speak the visitor's language: 403, 404 and 500, in English and Simplified Chinese."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.utils import translation

pytestmark = pytest.mark.django_db

ENGLISH, CHINESE = "en", "zh-CN,zh;q=0.9"


@pytest.mark.parametrize(
    ("language", "title", "lang"), [(ENGLISH, "Page not found", "en"), (CHINESE, "找不到页面", "zh-hans")]
)
def test_an_unknown_address_gets_the_not_found_page(client, language, title, lang):
    response = client.get("/help/no-such-page/", HTTP_ACCEPT_LANGUAGE=language)
    page = response.content.decode()
    assert response.status_code == 404
    assert f"<h1>{title}</h1>" in page and f'lang="{lang}"' in page


@pytest.mark.parametrize(("language", "title"), [(ENGLISH, "Access denied"), (CHINESE, "拒绝访问")])
def test_an_agent_refused_the_reports_gets_the_access_denied_page(client, agent, language, title):
    client.force_login(agent)
    response = client.get("/desk/reports/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 403
    assert f"<h1>{title}</h1>" in response.content.decode()


def test_the_server_error_page_renders_without_a_request_in_both_languages():
    # Django renders 500.html without a request or context processors.
    with translation.override("en"):
        assert "<h1>Something went wrong</h1>" in render_to_string("500.html")
    with translation.override("zh-hans"):
        page = render_to_string("500.html")
    assert "<h1>出错了</h1>" in page and 'lang="zh-hans"' in page


def test_pages_declare_an_inline_icon_so_browsers_do_not_ask_for_a_missing_favicon(client):
    assert '<link rel="icon" href="data:,">' in client.get("/help/contact/").content.decode()

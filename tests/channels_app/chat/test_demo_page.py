"""/help/chat/: the chat explained, the one-line embed for this desk, and the widget itself, in English and Chinese."""

from __future__ import annotations

import html

import pytest

pytestmark = pytest.mark.django_db

EMBED = '<script src="http://testserver/static/chat/widget.js" data-desk="http://testserver" async></script>'


def test_the_chat_page_shows_this_desks_embed_line_and_embeds_the_widget(client):
    response = client.get("/help/chat/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<html lang="en">' in page
    assert "<title>Live chat</title>" in page
    assert "<h1>Live chat</h1>" in page
    assert "Add the chat to your site" in page
    # Shown as text to copy (escaped), and loaded as the real thing on this page.
    assert f'<code id="embed-code">{html.escape(EMBED)}</code>' in page
    assert '<script src="/static/chat/widget.js" data-desk="http://testserver" async></script>' in page
    # The chat page is the help centre's: its navigation and language switch.
    assert 'href="/help/contact/"' in page and 'id="language-select"' in page


def test_the_chat_page_in_simplified_chinese(client):
    response = client.get("/help/chat/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<html lang="zh-hans">' in page
    assert "<title>在线咨询</title>" in page
    assert "<h1>在线咨询</h1>" in page
    assert "在您的网站上添加在线咨询" in page
    assert "帮助" in page  # the help centre's navigation
    assert "Add the chat to your site" not in page
    # The embed line is code: the same in every language.
    assert f'<code id="embed-code">{html.escape(EMBED)}</code>' in page


def test_the_widget_script_is_served_as_javascript(client):
    response = client.get("/static/chat/widget.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"attachShadow" in body


def test_the_desks_own_pages_read_the_widget_without_an_origin_header(client):
    """A same-origin GET carries no Origin (the browser says Sec-Fetch-Site: same-origin instead):
    the chat page's widget may read its settings; a request that says neither is refused."""
    own = client.get("/api/v1/chat/widgets/default/", HTTP_SEC_FETCH_SITE="same-origin")
    assert own.status_code == 200
    assert own.json()["key"] == "default"
    assert client.get("/api/v1/chat/widgets/default/").status_code == 403
    assert client.get("/api/v1/chat/widgets/default/", HTTP_SEC_FETCH_SITE="cross-site").status_code == 403

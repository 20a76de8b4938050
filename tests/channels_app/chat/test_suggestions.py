"""Knowledge-base suggestions in the chat widget's pre-chat form, counted for the deflection rate under the
widget's key for the visitor's browser (docs/help-centre.md, docs/chat-protocol.md)."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from rest_framework.test import APIClient

from servicedesk.kb.models import ArticleStatus, DeflectionEvent
from servicedesk.kb.services import ArticleInput, article_save
from tests.factories import AgentFactory

from .helpers import SHOP, chat_agent, widget_make

pytestmark = pytest.mark.django_db


def visitor(origin: str = SHOP) -> APIClient:
    client = APIClient()
    client.defaults["HTTP_ORIGIN"] = origin
    return client


def test_the_first_message_gets_suggestions_and_what_follows_is_counted_for_the_visitors_browser():
    widget = widget_make()
    chat_agent(widget.queue)
    writer = AgentFactory()
    article = article_save(
        data=ArticleInput(title="Printer on fire", body="Unplug it.", status=ArticleStatus.PUBLISHED), author=writer
    )
    article_save(data=ArticleInput(title="Printer draft", body="Secret.", status=ArticleStatus.DRAFT), author=writer)
    key = str(uuid.uuid4())
    url = f"/api/v1/chat/widgets/{widget.key}/suggestions/"
    response = visitor().get(url, {"q": "my printer is on fire", "visitor_key": key})
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == SHOP
    (suggested,) = response.json()["articles"]
    assert suggested["title"] == "Printer on fire" and suggested["url"].endswith(f"?ds=chat:{key}")
    assert list(DeflectionEvent.objects.values_list("session_key", "kind", "source")) == [
        (f"chat:{key}", "shown", "chat")
    ]
    # The link opens on the help centre, in a browser without the desk's cookies.
    Client().get(f"/help/kb/articles/{article.pk}/", {"ds": f"chat:{key}"})
    # The visitor starts the chat anyway.
    started = visitor().post(
        "/api/v1/chat/conversations/",
        {
            "widget": widget.key,
            "email": "vera@example.com",
            "text": "Still on fire",
            "client_id": str(uuid.uuid4()),
            "visitor_key": key,
        },
        format="json",
    )
    assert started.status_code == 201, started.content
    kinds = sorted(DeflectionEvent.objects.values_list("kind", flat=True))
    assert kinds == ["opened", "shown", "submitted"]


def test_other_sites_bad_keys_and_short_text_get_no_suggestions_recorded():
    widget = widget_make()
    url = f"/api/v1/chat/widgets/{widget.key}/suggestions/"
    assert visitor("https://evil.example").get(url, {"q": "printer fire"}).status_code == 403
    assert visitor().get(url, {"q": "pr"}).json() == {"articles": []}
    assert visitor().get(url, {"q": "x" * 201}).status_code == 400
    visitor().get(url, {"q": "printer fire", "visitor_key": "../../etc"})
    Client().get("/help/kb/articles/1/", {"ds": "chat:../../etc"})
    assert not DeflectionEvent.objects.exists()

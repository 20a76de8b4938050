"""Suggestions while a customer writes a request, what each browser session did with them, and the
self-service figures (docs/metrics.md#self-service, #deflection)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from servicedesk.kb import views as kb_views
from servicedesk.kb.figures import deflection_figures, self_service_figures
from servicedesk.kb.models import ArticleStatus, ArticleVote, DeflectionEvent, SearchQuery
from servicedesk.kb.services import ArticleInput, article_save
from tests.channels_app.web.helpers import contact_data
from tests.factories import AgentFactory
from tests.reports.delivery_helpers import calendar_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def articles(queue):
    writer = AgentFactory(queues=[queue])

    def write(title: str, body: str, status: str = ArticleStatus.PUBLISHED):  # type: ignore[no-untyped-def]
        return article_save(data=ArticleInput(title=title, body=body, status=status), author=writer)

    return [
        write("Printer on fire", "Unplug the printer."),
        write("Printer paper jams", "Open the printer tray."),
        write("Printer drivers", "Install the printer driver."),
        write("Printer colours", "Calibrate the printer."),
        write("Printer secrets", "Internal printer notes.", ArticleStatus.DRAFT),
    ]


def suggest(client, query: str):  # type: ignore[no-untyped-def]
    return client.get("/help/kb/suggest/", {"q": query, "source": "contact"})


def test_typing_a_subject_suggests_the_three_best_published_articles_once_each(client, articles):
    # The articles with every word first: one here.
    assert [a["title"] for a in suggest(client, "printer fire").json()["articles"]] == ["Printer on fire"]
    first = suggest(client, "printer").json()["articles"]
    assert len(first) == 3
    assert all(a["url"].endswith("/?suggested=1") for a in first)
    assert "Printer secrets" not in [a["title"] for a in first]
    suggest(client, "printer")  # typed again: nothing new shown
    assert DeflectionEvent.objects.filter(kind="shown").count() == 3
    assert suggest(client, "pr").json() == {"articles": []}
    assert suggest(client, "x" * 201).status_code == 400
    assert SearchQuery.objects.filter(source="suggest").count() == 3


def test_too_many_suggestions_from_one_address_are_429(client, articles, monkeypatch):
    monkeypatch.setattr(kb_views, "SUGGEST_PER_MINUTE", 2)
    from django.core.cache import cache

    cache.clear()
    answers = [suggest(client, "printer").status_code for _ in range(3)]
    assert answers == [200, 200, 429]


def test_opening_a_suggested_article_and_sending_a_request_are_recorded_for_the_session(client, articles):
    shown = suggest(client, "printer").json()["articles"]
    client.get(shown[0]["url"])
    # An article this session was not shown does not count as a suggested one opened.
    client.get(f"/help/kb/articles/{articles[3].pk}/?suggested=1")
    response = client.post("/help/contact/", contact_data(subject="Printer on fire"))
    assert response.status_code == 302
    kinds = list(DeflectionEvent.objects.order_by("pk").values_list("kind", flat=True))
    assert kinds == ["shown", "shown", "shown", "opened", "submitted"]
    assert len({key for key in DeflectionEvent.objects.values_list("session_key", flat=True)}) == 1


def test_a_request_from_a_session_shown_nothing_is_not_recorded(client, articles):
    client.post("/help/contact/", contact_data())
    assert not DeflectionEvent.objects.exists()


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def event(session: str, kind: str, hours: float) -> None:
    DeflectionEvent.objects.create(session_key=session, kind=kind, at=T0 + timedelta(hours=hours))


def test_the_deflection_rate_counts_sessions_that_opened_and_sent_nothing_within_24_hours():
    for session in "abcde":
        event(session, "shown", 0)
    event("a", "opened", 1)  # deflected: nothing sent
    event("b", "opened", 1)
    event("b", "submitted", 20)  # sent within 24 h of opening: not deflected
    event("c", "opened", 1)
    event("c", "submitted", 30)  # sent after the 24 h: deflected
    # d: shown only. e: opened late, its 24 h not over at as_of.
    event("e", "opened", 40)
    figures = deflection_figures(start=T0, end=T0 + timedelta(days=1), as_of=T0 + timedelta(hours=48))
    assert figures == {"sessions_shown": 5, "sessions_opened": 4, "deflected": 2, "rate": 0.4}
    # Earlier, a's and c's windows were not over: none decided yet.
    early = deflection_figures(start=T0, end=T0 + timedelta(days=1), as_of=T0 + timedelta(hours=10))
    assert early["deflected"] == 0 and early["sessions_shown"] == 5


def test_the_self_service_figures_and_the_dashboard(client, articles):
    client.get(f"/help/kb/articles/{articles[0].pk}/")
    client.get(f"/help/kb/articles/{articles[0].pk}/")
    client.post(f"/help/kb/articles/{articles[0].pk}/vote/", {"helpful": "yes"})
    for term in ("printer", "printer", "refund policy"):
        client.get("/help/kb/search/", {"q": term})
    now = timezone.now()
    figures = self_service_figures(start=now - timedelta(days=1), end=now + timedelta(days=1), as_of=now)
    assert figures["article_views"] == 2
    assert figures["helpful_votes"] == {"yes": 1, "no": 0, "rate": 1.0}
    assert figures["top_searches"][0] == {"term": "printer", "count": 2}
    assert figures["searches_without_result"] == [{"term": "refund policy", "count": 1}]
    assert ArticleVote.objects.count() == 1
    calendar_make()
    client.force_login(AgentFactory(role="manager"))
    today = timezone.localdate()
    period = {"preset": "custom", "start": str(today - timedelta(days=1)), "end": str(today + timedelta(days=2))}
    page = client.get("/desk/reports/", {**period, "calendar": "dublin"}).content.decode()
    assert "Self-service" in page and "refund policy" in page

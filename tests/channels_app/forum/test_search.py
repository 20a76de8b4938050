"""Answered questions in the help centre's search and the contact form's suggestions, by the forum's access rule."""

from __future__ import annotations

import pytest

from channels_app.forum.models import State, Topic
from channels_app.forum.search import answered_questions
from channels_app.forum.services import post_accept
from tests.channels_app.forum.helpers import XSS_CORPUS, active_markup, reply_make, topic_make
from tests.channels_app.web.helpers import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def answered(public, acme_only, alice, bob, staff):
    """A public answered question, an organization's answered question, and a public one nobody answered."""

    def ask(category, title, answer_text=None):  # type: ignore[no-untyped-def]
        topic = topic_make(alice, category, title=title, body="Details follow.")
        if answer_text:
            post_accept(member=alice, post=reply_make(staff, topic, answer_text))
        return Topic.objects.get(pk=topic.pk)

    return {
        "public": ask(public, "Printer shows error E42", "Reset the toner sensor from the settings menu."),
        "acme": ask(acme_only, "Printer in the Acme office jams", "Use the heavier paper in tray two."),
        "open": ask(public, "Printer makes a noise"),
    }


def titles(found) -> set[str]:  # type: ignore[no-untyped-def]
    return {topic.title for topic, _answer in found}


def test_a_question_is_found_by_its_title_or_its_accepted_answer_and_only_once_answered(answered):
    from channels_app.forum.access import ANONYMOUS

    assert titles(answered_questions(ANONYMOUS, "printer error", limit=5)) == {"Printer shows error E42"}
    assert titles(answered_questions(ANONYMOUS, "toner sensor", limit=5)) == {"Printer shows error E42"}
    # Every word must be there; a question nobody answered is never offered.
    assert titles(answered_questions(ANONYMOUS, "printer noise", limit=5)) == set()
    found = answered_questions(ANONYMOUS, "TONER", limit=5)
    assert found[0][1] is not None and found[0][1].body_text.startswith("Reset the toner")


def test_private_and_hidden_questions_are_found_only_by_who_may_read_them(client, answered, alice, bob):
    anonymous = client.get("/help/kb/search/", {"q": "printer"}).content.decode()
    assert "Printer shows error E42" in anonymous and "Acme office" not in anonymous
    sign_in(client, alice.customer)
    assert "Printer in the Acme office jams" in client.get("/help/kb/search/", {"q": "printer"}).content.decode()
    Topic.objects.filter(pk=answered["public"].pk).update(state=State.HIDDEN)
    client.cookies.clear()
    assert "Printer shows error E42" not in client.get("/help/kb/search/", {"q": "printer"}).content.decode()


def test_the_contact_forms_suggestions_add_answered_questions(client, answered):
    data = client.get("/help/kb/suggest/", {"q": "toner sensor"}).json()
    assert data["answers"] == [
        {
            "title": "Printer shows error E42",
            "url": f"/community/t/{answered['public'].pk}-{answered['public'].slug}/",
            "source": "community",
        }
    ]


@pytest.mark.parametrize("hostile", XSS_CORPUS)
def test_a_hostile_question_is_text_in_the_search_page(client, public, alice, staff, hostile):
    topic = topic_make(alice, public, title=f"Printer {hostile}"[:200], body="x")
    post_accept(member=alice, post=reply_make(staff, topic, f"Printer fix {hostile}"))
    page = client.get("/help/kb/search/", {"q": "printer"}).content.decode()
    assert "Answered in the community" in page
    assert active_markup(page.split("Answered in the community", 1)[1]) == []

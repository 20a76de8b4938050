"""The community's answered questions in the help centre's search and suggestions (``servicedesk/kb/sources.py``).

A question is found when every word of the query is in its title or in one of
its accepted answers (case-insensitive, a word as a substring, so Chinese
without spaces matches too), among the topics the reader may read
(``access.topics_visible_to``: a private or hidden topic is never found by
someone who may not open it), best answered first.
"""

from __future__ import annotations

import re

from django.db.models import Exists, OuterRef, Q
from django.http import HttpRequest

from servicedesk.kb.sources import OtherAnswer

from . import access
from .models import Kind, Post, State, Topic
from .services import topic_url

WORDS_MAX = 6
SNIPPET_CHARS = 160
_WORD = re.compile(r"\w{2,}", re.UNICODE)


def answered_questions(viewer: access.Viewer, query: str, *, limit: int) -> list[tuple[Topic, Post | None]]:
    """The answered questions ``viewer`` reads that hold every word of ``query``, with their first accepted answer."""
    words = _WORD.findall(query.lower())[:WORDS_MAX]
    if not words or limit <= 0:
        return []
    topics = access.topics_visible_to(viewer, own_unlisted=False).filter(
        kind=Kind.QUESTION, accepted_count__gt=0, merged_into__isnull=True
    )
    for word in words:
        in_answer = Post.objects.filter(
            topic=OuterRef("pk"), accepted=True, state=State.VISIBLE, body_text__icontains=word
        )
        topics = topics.filter(Q(title__icontains=word) | Exists(in_answer))
    found = list(topics.order_by("-accepted_count", "-votes_count", "-last_post_at", "-id")[:limit])
    answers: dict[int, Post] = {}
    for post in Post.objects.filter(topic__in=found, accepted=True, state=State.VISIBLE, position__gt=1).order_by(
        "-position"
    ):
        answers[post.topic_id] = post  # the lowest position wins
    return [(topic, answers.get(topic.pk)) for topic in found]


def community_answers(request: HttpRequest, query: str, limit: int) -> list[OtherAnswer]:
    """The help centre's source: the reader's answered questions as search results."""
    from .views import viewer_of

    found = answered_questions(viewer_of(request), query, limit=limit)
    return [
        OtherAnswer(
            title=topic.title,
            snippet=(answer.body_text if answer is not None else "")[:SNIPPET_CHARS],
            url=topic_url(topic),
            source="community",
        )
        for topic, answer in found
    ]

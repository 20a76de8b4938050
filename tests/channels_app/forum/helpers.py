"""What the forum tests share: writing as a member, and the XSS corpus."""

from __future__ import annotations

from channels_app.forum.models import Category, Member, Post, Topic
from channels_app.forum.services import post_create, topic_create

# Hostile input for titles, bodies and names: each must come out as text, never as markup or script.
XSS_CORPUS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<svg onload=alert(1)>",
    '"><script>alert(1)</script>',
    "</script><script>alert(1)</script>",
    '<iframe src="https://evil.example"></iframe>',
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "![x](https://evil.example/pixel.png)",
    "<style>body{display:none}</style>",
    "<!--<script>alert(1)</script>-->",
    "' onmouseover='alert(1)",
    "<details open ontoggle=alert(1)>",
]
# What none of the above may leave in a page: executable markup.
XSS_MARKERS = ["<script>alert", "onerror=", "onload=", "<iframe", "javascript:", "ontoggle=", "onmouseover=", "<svg"]


def topic_make(
    member: Member, category: Category, title: str = "Printer on fire", body: str = "It burns.", **kwargs
) -> Topic:  # type: ignore[no-untyped-def]
    return topic_create(member=member, category=category, kind=kwargs.pop("kind", "question"), title=title, body=body)


def reply_make(member: Member, topic: Topic, body: str = "Try turning it off.") -> Post:
    return post_create(member=member, topic=topic, body=body)

"""What the desk's pages show of the community, without the desk importing the forum (docs/architecture.md):

- ``{% forum_customer_topics customer %}``: the customer's topics on their page, beside their tickets
  from the other channels;
- ``{% forum_ticket_panel ticket %}``: on a ticket escalated from the community, the topic it came
  from, its agents' public replies to post back there (once each), and once solved, the prompt to
  post and accept a summary.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.db.models import Exists, OuterRef

from channels_app.forum.escalation import customer_topics, ticket_forum_link
from channels_app.forum.models import Post
from channels_app.forum.services import topic_url
from servicedesk.tickets.models import Message, MessageKind
from servicedesk.tickets.statuses import Status

register = template.Library()


@register.inclusion_tag("forum/_desk_customer_topics.html", takes_context=True)
def forum_customer_topics(context: template.Context, customer: Any) -> dict[str, Any]:
    topics = customer_topics(customer)
    return {"topics": [(topic, topic_url(topic)) for topic in topics], "request": context.get("request")}


@register.inclusion_tag("forum/_desk_ticket_panel.html", takes_context=True)
def forum_ticket_panel(context: template.Context, ticket: Any) -> dict[str, Any]:
    link = ticket_forum_link(ticket)
    if link is None:
        return {"link": None}
    replies = list(
        Message.objects.filter(ticket=ticket, kind=MessageKind.PUBLIC_AGENT)
        .exclude(external_id__startswith="forum:reply:")
        .annotate(posted=Exists(Post.objects.filter(source_message=OuterRef("pk"))))
        .order_by("created_at", "pk")
    )
    return {
        "link": link,
        "topic_path": topic_url(link.topic),
        "ticket": ticket,
        "replies": replies,
        "solved": ticket.status in (Status.SOLVED, Status.CLOSED),
        "csrf_token": context.get("csrf_token"),
        "request": context.get("request"),
    }

"""Topics and tickets, both ways (docs/community.md, "Topics and tickets").

- **Escalation** (``topic_escalate``, ``post_escalate``): a topic, or one post,
  becomes a private ticket through the intake like every other contact:
  channel ``forum``, the author as sender (their customer record), external
  id ``forum:topic:<id>`` or ``forum:post:<id>`` so a repeat finds the same
  ticket. The topic (or post) and the ticket point at each other, the ticket
  carries an internal note with the topic's address, and the moderation log
  records who escalated. The ticket is routed, acknowledged and put under
  the SLA policy that matches channel ``forum`` as any new ticket is.
- **Automatic escalation** (``topics_escalate_due``, a beat task): a question
  of a support category past ``escalation_due_at`` without a staff reply or
  an accepted answer.
- **Staff replies count on the ticket** (``staff_reply_record``): an agent's
  reply on an escalated topic is stored on the ticket as that agent's public
  message at the reply's instant, not mailed (the author is mailed by the
  forum), so the ticket's first reply and its SLA target are the forum's.
- **Back to the topic** (``ticket_reply_post_back``): an agent's public reply
  on the ticket posted on the topic once (``Post.source_message`` is unique);
  ``ticket_summary_post``: the summary of a solved ticket, posted and accepted.
- **Reminder** (``accept_reminders_send``): the author of a question answered
  but without an accepted answer is asked once to accept one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import ApplicationError
from servicedesk.core.mail_templates import mail_render
from servicedesk.core.text import header_safe
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.locks import row_lock
from servicedesk.tickets.models import Customer, IdentityKind, Message, MessageKind, Ticket
from servicedesk.tickets.services.customers import customer_identity_add, customer_root
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create

from .models import Kind, Member, ModerationAction, ModerationActionKind, Post, State, Topic
from .services import ForumRefused, member_ensure, post_accept, post_create, post_source, topic_url

log = logging.getLogger(__name__)

CHANNEL = "forum"
# Topics escalated by one run of the beat task at most (the next run takes the rest).
ESCALATE_BATCH = 200


class EscalationRefused(ApplicationError):
    """What cannot become a ticket: a staff post, a topic without a customer, a held or merged topic."""

    status_code = 409


def _link(topic: Topic, post: Post | None = None) -> str:
    if post is not None and post.position > 1:
        return f"{settings.SITE_URL}/community/p/{post.pk}/"
    return f"{settings.SITE_URL}{topic_url(topic)}"


def _sender(customer: Customer, member: Member) -> SenderIdentity:
    """The author as the intake's sender: their first email address (as the help centre's replies), else
    their forum account, added to their record when missing (a phone number is not used: several
    customers may share one, and the intake would pick its first holder)."""
    root = customer_root(customer)
    identities = list(root.identities.exclude(kind=IdentityKind.PHONE).order_by("pk").values_list("kind", "value"))
    emails = [item for item in identities if item[0] == IdentityKind.EMAIL]
    if emails or identities:
        kind, value = (emails or identities)[0]
        return SenderIdentity(kind=kind, value=value, name=root.name)
    identity = customer_identity_add(customer=root, kind=IdentityKind.FORUM, value=f"member:{member.pk}")
    return SenderIdentity(kind=identity.kind, value=identity.value, name=root.name)


def _agent_check(agent: User | None) -> None:
    if agent is not None and not is_agent(agent):
        raise ForumRefused(_("Only staff escalate to a ticket."))


def _escalate(*, topic: Topic, post: Post | None, agent: User | None, at: datetime, public_note: bool) -> Ticket:
    """The common path of ``topic_escalate`` and ``post_escalate``, under the topic's row lock."""
    source = post if post is not None else Post.objects.select_related("author").get(topic=topic, position=1)
    author = Member.objects.select_related("customer").get(pk=source.author_id)
    if author.customer is None or source.is_staff:
        raise EscalationRefused(_("Only a customer's post can become a ticket."))
    external_id = f"forum:post:{post.pk}" if post is not None else f"forum:topic:{topic.pk}"
    link = _link(topic, post)
    text = f"{source.body_text}\n\n{link}"
    inbound = InboundMessage(
        channel=CHANNEL,
        external_id=external_id,
        sender=_sender(author.customer, author),
        subject=topic.title,
        text=text,
        queue=topic.category.queue.slug if topic.category.queue is not None else None,
        language=author.customer.language,
        received_at=at,
        metadata={"forum_topic": str(topic.pk)},
    )
    result = inbound_message_receive(inbound=inbound)
    ticket = result.ticket
    if post is not None:
        linked = Post.objects.filter(pk=post.pk, escalated_ticket__isnull=True).update(escalated_ticket=ticket)
    else:
        linked = Topic.objects.filter(pk=topic.pk, escalated_ticket__isnull=True).update(
            escalated_ticket=ticket, escalated_at=at, escalation_due_at=None
        )
    if linked:
        who = str(agent) if agent is not None else _("the community's target for a staff reply")
        ticket_note_create(
            ticket=ticket,
            author=agent,
            text=_("Escalated from the community by %(who)s: %(link)s") % {"who": who, "link": link},
            actor=Actor.agent(agent, source=CHANNEL) if agent is not None else Actor.system(source=CHANNEL),
            at=at,
            external_id=f"{external_id}:note",
        )
        ModerationAction.objects.create(
            action=ModerationActionKind.ESCALATE,
            actor=agent,
            at=at,
            topic=topic,
            post=post,
            member=author,
            details={"ticket": ticket.reference},
        )
        if public_note and agent is not None:
            post_create(
                member=member_ensure(user=agent),
                topic=topic,
                body=_("We have taken this to private support and will follow up with the author directly."),
                at=at,
                on_ticket=False,
            )
    return ticket


def topic_escalate(
    *, topic: Topic, agent: User | None, public_note: bool = False, at: datetime | None = None
) -> Ticket:
    """Open (or find) the private ticket of a topic: the intake with channel ``forum``, external id
    ``forum:topic:<id>``, the topic's author as customer, in its category's queue; linked both ways
    with an internal note naming the topic, and recorded in the moderation log. ``agent`` None: the
    automatic escalation. ``public_note``: a staff reply on the topic says it moved to private support.

    Idempotent: the topic's row lock orders two calls and the intake's (channel, external id) key
    finds the ticket; a second call returns the same ticket and writes nothing. Errors:
    ``ForumRefused`` (not an agent); ``EscalationRefused`` for a topic by staff, held or merged.
    """
    _agent_check(agent)
    at = at or timezone.now()
    with transaction.atomic():
        locked = row_lock(Topic, topic.pk)
        if locked.escalated_ticket_id is not None:
            return Ticket.objects.get(pk=locked.escalated_ticket_id)
        if locked.merged_into_id is not None or locked.state == State.HELD:
            raise EscalationRefused(_("This topic cannot become a ticket."))
        locked.category = topic.category
        return _escalate(topic=locked, post=None, agent=agent, at=at, public_note=public_note)


def post_escalate(*, post: Post, agent: User, at: datetime | None = None) -> Ticket:
    """Open (or find) the private ticket of one post (external id ``forum:post:<id>``), its author as
    customer, linked both ways (``Post.escalated_ticket``). Idempotent like ``topic_escalate``.
    Errors: ``ForumRefused``; ``EscalationRefused`` for a staff post."""
    _agent_check(agent)
    at = at or timezone.now()
    with transaction.atomic():
        topic = row_lock(Topic, post.topic_id)
        current = row_lock(Post, post.pk)
        if current.escalated_ticket_id is not None:
            return Ticket.objects.get(pk=current.escalated_ticket_id)
        topic.category = post.topic.category
        return _escalate(topic=topic, post=current, agent=agent, at=at, public_note=False)


def topics_escalation_due(*, now: datetime) -> QuerySet[Topic]:
    """Questions of support categories past their target, with no staff reply, no accepted answer and no
    ticket yet (index ``forum_topic_escalation_due``)."""
    return Topic.objects.filter(
        escalation_due_at__lte=now,
        escalated_at__isnull=True,
        state=State.VISIBLE,
        kind=Kind.QUESTION,
        first_staff_reply_at__isnull=True,
        answered_at__isnull=True,
        merged_into__isnull=True,
        customer__isnull=False,
        category__is_support=True,
    ).order_by("escalation_due_at", "pk")


def topics_escalate_due(*, now: datetime | None = None) -> int:
    """Escalate every question past its target (``topics_escalation_due``); how many tickets opened.
    Running it twice opens no second ticket (``topic_escalate`` is idempotent). A topic that fails is
    logged and left for the next run."""
    now = now or timezone.now()
    opened = 0
    for topic in topics_escalation_due(now=now).select_related("category__queue")[:ESCALATE_BATCH]:
        try:
            topic_escalate(topic=topic, agent=None, at=now)
        except ApplicationError:
            log.warning("Forum topic %s was not escalated", topic.pk, exc_info=True)
            continue
        opened += 1
    return opened


def staff_reply_record(*, post_id: int) -> Message | None:
    """Store a staff reply on an escalated topic on its ticket: the agent's public message at the reply's
    instant, not mailed, so it is the ticket's first reply when it is the first (docs/metrics.md: first
    reply is the first ``public_agent`` message). Idempotent: the message's external id
    ``forum:reply:<post id>`` is unique, a second call finds it. None when nothing applies (not a staff
    reply, written before the escalation, a ticket that no longer takes messages)."""
    post = Post.objects.select_related("topic", "author__user").filter(pk=post_id).first()
    if post is None or not post.is_staff or post.state != State.VISIBLE or post.source_message_id is not None:
        return None
    topic = post.topic
    user = post.author.user
    if topic.escalated_ticket_id is None or topic.escalated_at is None or post.created_at < topic.escalated_at:
        return None
    if user is None:
        return None
    external_id = f"forum:reply:{post.pk}"
    found = Message.objects.filter(channel=CHANNEL, external_id=external_id).first()
    if found is not None:
        return found
    ticket = Ticket.objects.get(pk=topic.escalated_ticket_id)
    try:
        with transaction.atomic():
            return ticket_reply_create(
                ticket=ticket,
                author=user,
                text=f"{post.body_text}\n\n{_link(topic, post)}",
                actor=Actor.agent(user, source=CHANNEL),
                at=post.created_at,
                deliver=False,
                external_id=external_id,
            )
    except IntegrityError:
        return Message.objects.filter(channel=CHANNEL, external_id=external_id).first()
    except ApplicationError:
        log.warning("Staff reply %s not recorded on ticket %s", post.pk, ticket.reference, exc_info=True)
        return None


# ---------------------------------------------------------------- from the ticket back to the topic


@dataclass(frozen=True)
class TicketLink:
    """The topic a ticket came from, and the post when one post was escalated."""

    topic: Topic
    post: Post | None


def ticket_forum_link(ticket: Ticket) -> TicketLink | None:
    """The topic (and post) ``ticket`` was escalated from, or None: no query for a ticket of another
    channel, else one or two, each by a foreign key's index."""
    if ticket.channel != CHANNEL:
        return None
    topic = Topic.objects.select_related("category").filter(escalated_ticket=ticket).order_by("pk").first()
    if topic is not None:
        return TicketLink(topic=topic, post=None)
    post = Post.objects.select_related("topic__category").filter(escalated_ticket=ticket).order_by("pk").first()
    return TicketLink(topic=post.topic, post=post) if post is not None else None


def ticket_reply_post_back(*, message: Message, agent: User, at: datetime | None = None) -> Post:
    """Post an agent's public reply on a ticket escalated from the community to its topic, as the agent
    (a staff reply), once: ``Post.source_message`` is unique, so a retry or a second click returns the
    post made the first time. Errors: ``ForumRefused`` (not an agent); ``ApplicationError`` for a
    message that is not a public agent reply of a linked ticket; the topic's refusals (hidden)."""
    _agent_check(agent)
    if message.kind != MessageKind.PUBLIC_AGENT:
        raise ApplicationError(_("Only a public reply can be posted to the community."))
    existing = Post.objects.filter(source_message=message).first()
    if existing is not None:
        return existing
    link = ticket_forum_link(message.ticket)
    if link is None:
        raise ApplicationError(_("This ticket did not come from the community."))
    try:
        with transaction.atomic():
            return post_create(
                member=member_ensure(user=agent),
                topic=link.topic,
                body=message.text,
                at=at,
                on_ticket=False,
                source_message=message,
            )
    except IntegrityError:
        return Post.objects.get(source_message=message)


def ticket_summary_post(*, ticket: Ticket, text: str, agent: User, at: datetime | None = None) -> Post:
    """Post the summary of a ticket escalated from the community on its topic as the agent's reply and,
    on a question, accept it as the answer, in one transaction. Idempotent on the text: the same
    summary by the same agent on the topic again (a second click) returns the first post, under
    the topic's row lock. Errors: ``ForumRefused``; ``ApplicationError`` for a ticket not from the
    community or an empty text."""
    _agent_check(agent)
    link = ticket_forum_link(ticket)
    if link is None:
        raise ApplicationError(_("This ticket did not come from the community."))
    member = member_ensure(user=agent)
    source = post_source(text)
    with transaction.atomic():
        row_lock(Topic, link.topic.pk)
        posted = Post.objects.filter(topic=link.topic, author=member, body=source).order_by("-pk").first()
        if posted is not None:
            return posted
        post = post_create(member=member, topic=link.topic, body=text, at=at, on_ticket=False)
        post.topic = link.topic
        if link.topic.kind == Kind.QUESTION:
            post_accept(member=member, post=post)
    return post


# ---------------------------------------------------------------- reminder to accept an answer


def topics_accept_reminder_due(*, now: datetime) -> QuerySet[Topic]:
    """Questions replied to by someone else at least ``FORUM_ACCEPT_REMINDER_DAYS`` ago, still without an
    accepted answer, whose author (a customer) was not asked yet."""
    days = settings.SERVICEDESK["FORUM_ACCEPT_REMINDER_DAYS"]
    return Topic.objects.filter(
        kind=Kind.QUESTION,
        state=State.VISIBLE,
        merged_into__isnull=True,
        answered_at__isnull=True,
        accept_reminder_sent_at__isnull=True,
        first_reply_at__lte=now - timedelta(days=days),
        customer__isnull=False,
    ).order_by("pk")


def accept_reminders_send(*, now: datetime | None = None) -> int:
    """Ask each author of ``topics_accept_reminder_due`` once, by mail, to accept an answer; how many mails.

    At most once per topic: ``accept_reminder_sent_at`` is claimed by one ``UPDATE ... WHERE
    accept_reminder_sent_at IS NULL`` before the mail is sent, so a second run sends nothing (a mail
    that fails after its claim is logged, not retried)."""
    from .services import address_of

    now = now or timezone.now()
    sent = 0
    for topic in topics_accept_reminder_due(now=now).select_related("author__customer", "category"):
        if not Topic.objects.filter(pk=topic.pk, accept_reminder_sent_at__isnull=True).update(
            accept_reminder_sent_at=now
        ):
            continue
        address = address_of(topic.author)
        if not address:
            continue
        language = (topic.author.customer.language if topic.author.customer else "") or "en"
        try:
            with translation.override(language):
                context = {
                    "member_name": topic.author.display_name,
                    "topic_title": topic.title,
                    "link": f"{settings.SITE_URL}{topic_url(topic)}",
                }
                subject = header_safe(mail_render("forum/accept_reminder_subject.txt", context).strip())
                body = mail_render("forum/accept_reminder_mail.txt", context).strip() + "\n"
            EmailMessage(subject, body, None, [address], headers={"Auto-Submitted": "auto-generated"}).send()
        except Exception:
            log.warning("Accept reminder for forum topic %s not sent", topic.pk, exc_info=True)
            continue
        sent += 1
    return sent


# ---------------------------------------------------------------- the customer's history


def customer_topics(customer: Customer, *, limit: int = 20) -> list[Topic]:
    """The topics ``customer`` opened (and those of records merged into theirs), newest first, in any
    state (the desk reads every topic)."""
    return list(
        Topic.objects.filter(Q(customer=customer) | Q(customer__merged_into=customer))
        .select_related("category", "escalated_ticket")
        .order_by("-created_at", "-pk")[:limit]
    )

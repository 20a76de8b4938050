"""Satisfaction surveys (docs/help-centre.md, "Satisfaction surveys"; docs/metrics.md#csat).

- ``surveys_send`` (the beat, every minute): each ticket solved
  ``SURVEY_DELAY_MINUTES`` ago and still solved is surveyed once for that
  solve, unless it is spam, deleted, merged, or opened by automatic mail, its
  customer has no address that works, or the customer was surveyed in the
  last ``SURVEY_QUIET_DAYS``. The survey records the ticket's assignee, queue
  and channel as they were, for the response rate's breakdowns.
- ``survey_mail``: the mail, in the customer's language, with the scores 1 to
  5 as links; sent at most once (a claim), and again by the beat when its task
  was lost.
- A score link only shows the chosen score with a comment box and one button
  (mail scanners open every link); ``survey_answer`` records the answer as the
  ticket's rating, and a second answer for the same solve replaces the first.
- A survey closes when its ticket is closed (or set aside) or
  ``SURVEY_OPEN_DAYS`` after it was sent.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.template.loader import render_to_string
from django.urls import get_script_prefix
from django.utils import timezone, translation
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _

from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.text import clean_text
from servicedesk.tickets.events import Actor, event_record
from servicedesk.tickets.locks import customer_lock, row_lock
from servicedesk.tickets.models import Identity, IdentityKind, Rating, Survey, Ticket, TicketEvent
from servicedesk.tickets.services.tickets import ticket_rate
from servicedesk.tickets.statuses import Status

log = logging.getLogger(__name__)

SALT = "servicedesk.survey"
# The help centre's survey page (URL name ``web:survey``), written out as the portal's links are.
SURVEY_PATH = "help/surveys/{token}/"
COMMENT_MAX = 2000
SCORES = (1, 2, 3, 4, 5)


class SurveyClosed(ApplicationError):
    pass


def survey_token(survey: Survey) -> str:
    return signing.dumps({"s": survey.pk, "k": survey.key}, salt=SALT)


def survey_url(survey: Survey, score: int | None = None) -> str:
    url = settings.SITE_URL + get_script_prefix() + SURVEY_PATH.format(token=survey_token(survey))
    return f"{url}?score={score}" if score else url


def survey_for_token(token: str) -> Survey:
    """The survey a signed link names, else NotFound (tampered, revoked or unknown)."""
    try:
        data = signing.loads(token, salt=SALT)
        survey = Survey.objects.select_related("ticket", "customer").get(pk=int(data["s"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError, Survey.DoesNotExist):
        raise NotFound("Survey not found.") from None
    if not constant_time_compare(survey.key, str(data.get("k", ""))):
        raise NotFound("Survey not found.")
    return survey


def survey_is_open(survey: Survey, at: datetime | None = None) -> bool:
    ticket = survey.ticket
    return (
        (at or timezone.now()) < survey.closes_at
        and ticket.status != Status.CLOSED
        and not (ticket.is_spam or ticket.is_deleted or ticket.merged_into_id)
    )


def survey_open_for(ticket: Ticket, at: datetime | None = None) -> Survey | None:
    """The open survey of the ticket's current solve, if there is one (the portal offers it)."""
    if ticket.solved_at is None:
        return None
    survey = Survey.objects.filter(ticket=ticket, solved_at=ticket.solved_at).select_related("rating").first()
    if survey is None:
        return None
    survey.ticket = ticket
    return survey if survey_is_open(survey, at) else None


def _working_address(customer_id: int) -> QuerySet[Identity]:
    return Identity.objects.filter(customer_id=customer_id, kind=IdentityKind.EMAIL, is_bouncing=False).order_by("pk")


def tickets_to_survey(now: datetime) -> QuerySet[Ticket]:
    """Tickets whose solve is due a survey at ``now`` (see the module)."""
    conf = settings.SERVICEDESK
    quiet = now - timedelta(days=conf["SURVEY_QUIET_DAYS"])
    automatic = TicketEvent.objects.filter(
        ticket=OuterRef("pk"), kind=TicketEvent.Kind.MESSAGE, at=OuterRef("created_at"), after__automatic=True
    )
    return (
        Ticket.objects.filter(
            status=Status.SOLVED,
            solved_at__lte=now - timedelta(minutes=conf["SURVEY_DELAY_MINUTES"]),
            solved_at__gt=now - timedelta(days=conf["SURVEY_OPEN_DAYS"]),
            is_spam=False,
            is_deleted=False,
            merged_into__isnull=True,
        )
        .exclude(Exists(Survey.objects.filter(ticket=OuterRef("pk"), solved_at=OuterRef("solved_at"))))
        .exclude(Exists(Survey.objects.filter(customer=OuterRef("customer"), sent_at__gt=quiet)))
        .exclude(Exists(automatic))
        .filter(
            Exists(Identity.objects.filter(customer=OuterRef("customer"), kind=IdentityKind.EMAIL, is_bouncing=False))
        )
        .order_by("solved_at", "pk")
    )


def surveys_send(*, now: datetime | None = None, limit: int = 200) -> int:
    """Survey the tickets that are due, and queue the mail still owed; how many surveys were made."""
    now = now or timezone.now()
    made = 0
    for ticket_id in list(tickets_to_survey(now).values_list("pk", flat=True)[:limit]):
        if _survey_make(ticket_id, now) is not None:
            made += 1
    owed = Survey.objects.filter(mailed_at__isnull=True, sent_at__lt=now - timedelta(minutes=1), closes_at__gt=now)
    for survey_id in list(owed.values_list("pk", flat=True)[:limit]):
        _mail_enqueue(survey_id)
    return made


def _survey_make(ticket_id: int, now: datetime) -> Survey | None:
    conf = settings.SERVICEDESK
    try:
        with transaction.atomic():
            ticket = row_lock(Ticket, ticket_id)
            # One customer at a time: the quiet days hold across tickets surveyed at once.
            customer_lock(ticket.customer_id)
            if ticket.status != Status.SOLVED or ticket.solved_at is None:
                return None
            quiet = now - timedelta(days=conf["SURVEY_QUIET_DAYS"])
            if Survey.objects.filter(customer_id=ticket.customer_id, sent_at__gt=quiet).exists():
                return None
            address = _working_address(ticket.customer_id).values_list("value", flat=True).first()
            if address is None:
                return None
            survey = Survey.objects.create(
                ticket=ticket,
                customer_id=ticket.customer_id,
                solved_at=ticket.solved_at,
                sent_at=now,
                closes_at=now + timedelta(days=conf["SURVEY_OPEN_DAYS"]),
                agent_id=ticket.assignee_id,
                queue_id=ticket.queue_id,
                channel=ticket.channel,
                address=address,
                language=ticket.language or ticket.customer.language or "",
                key=secrets.token_hex(16),
            )
            # On the ticket's timeline; the reports' snapshots of its cohort see the change.
            event_record(ticket=ticket, kind=TicketEvent.Kind.SURVEYED, actor=Actor.system(), at=now)
            survey_id = survey.pk
            transaction.on_commit(lambda: _mail_enqueue(survey_id))
    except IntegrityError:
        # Surveyed for this solve meanwhile.
        return None
    return survey


def survey_record_asked_in_chat(*, ticket: Ticket, agent_id: int | None, ended_at: datetime) -> Survey:
    """A chat that an agent answered has ended: the widget asks the visitor for a rating then.

    Recorded as a survey of the chat's ticket (``via`` chat, no mail), so the
    response rate counts the ask, and the mail survey of a later solve keeps
    to the customer's quiet days. Idempotent for one chat's end.
    """
    conf = settings.SERVICEDESK
    survey, created = Survey.objects.get_or_create(
        ticket=ticket,
        solved_at=ended_at,
        defaults={
            "customer_id": ticket.customer_id,
            "sent_at": ended_at,
            "mailed_at": ended_at,
            "closes_at": ended_at + timedelta(days=conf["SURVEY_OPEN_DAYS"]),
            "agent_id": agent_id,
            "queue_id": ticket.queue_id,
            "channel": ticket.channel,
            "via": "chat",
            "language": ticket.language or "",
            "key": secrets.token_hex(16),
        },
    )
    if created:
        event_record(ticket=ticket, kind=TicketEvent.Kind.SURVEYED, actor=Actor.system(), at=ended_at)
    return survey


def survey_rating_link(*, ticket_id: int, asked_at: datetime, rating: Rating) -> None:
    """The rating given in the chat widget answers the survey recorded as the chat ended."""
    Survey.objects.filter(ticket_id=ticket_id, solved_at=asked_at).update(rating=rating)


def _mail_enqueue(survey_id: int) -> None:
    from servicedesk.tickets.tasks import survey_mail_task

    task_enqueue(survey_mail_task, survey_id)


def survey_mail(*, survey_id: int) -> bool:
    """Mail one survey, at most once (the claim on ``mailed_at``); False when nothing was sent."""
    if not Survey.objects.filter(pk=survey_id, mailed_at__isnull=True).update(mailed_at=timezone.now()):
        return False
    survey = Survey.objects.select_related("ticket", "customer").get(pk=survey_id)
    if not survey_is_open(survey):
        return False
    with translation.override(survey.language or settings.LANGUAGE_CODE):
        context = {
            "customer_name": survey.customer.name,
            "ticket": survey.ticket,
            "scores": [(score, survey_url(survey, score)) for score in SCORES],
            "days": settings.SERVICEDESK["SURVEY_OPEN_DAYS"],
        }
        subject = _("How did we do? [%(reference)s]") % {"reference": survey.ticket.reference}
        body = render_to_string("tickets/survey_mail.txt", context).strip() + "\n"
    return bool(send_mail(subject, body, None, [survey.address]))


def survey_answer(*, survey: Survey, score: int, comment: str = "", at: datetime | None = None) -> Rating:
    """Record the answer as the ticket's rating; a second answer for the same solve replaces the first.

    SurveyClosed when the survey has closed; ApplicationError for a score
    outside 1-5 or a comment too long (nothing is recorded).
    """
    at = at or timezone.now()
    if score not in SCORES:
        raise ApplicationError(_("Choose a score from 1 to 5."), field="score")
    comment = clean_text(comment or "").strip()
    if len(comment) > COMMENT_MAX:
        raise ApplicationError(_("A comment has at most %(n)d characters.") % {"n": COMMENT_MAX}, field="comment")
    with transaction.atomic():
        locked = row_lock(Survey, survey.pk)
        locked.ticket = Ticket.objects.get(pk=locked.ticket_id)
        if not survey_is_open(locked, at):
            raise SurveyClosed(_("This survey has closed. Thank you all the same."))
        previous = locked.rating_id
        if previous is not None:
            Rating.objects.filter(pk=previous).delete()
        rating = ticket_rate(
            ticket=locked.ticket,
            score=score,
            comment=comment,
            actor=Actor.of_customer(survey.customer, source="portal"),
            at=at,
            external_key=f"survey:{locked.pk}:{secrets.token_hex(4)}",
        )
        locked.rating = rating
        locked.save(update_fields=["rating"])
    return rating


def ticket_satisfaction(ticket: Ticket) -> Rating | None:
    """The ticket's latest rating (the one docs/metrics.md#csat counts), from a survey or imported."""
    return Rating.objects.filter(ticket=ticket).order_by("-at", "-pk").first()

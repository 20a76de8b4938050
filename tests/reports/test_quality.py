"""One-touch, FCR, reopen and CSAT figures (docs/metrics.md#reopen, #fcr, #csat) on hand-worked timelines.

Every timeline is written through the ticket services with explicit instants;
hours are counted from T0. The arithmetic of each expected figure is in the
comments next to it. The tests ask the ORM reference implementation
(``tests/reports/quality_reference.py``) for the figures.

Every test is also checked against the report's own computation of the same
figures (``quality_figures`` over a report's facts, the set-based
implementation the product runs): at each ``as_of`` a test asks about, the
whole in-scope cohort of the database, overall and by channel, must give the
same figures.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest
from django.db.models import Exists, F, OuterRef, QuerySet

from reports.metrics.quality import quality_empty
from reports.services import report_compute
from servicedesk.accounts.models import User
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Customer, Initiator, Organization, Queue, Ticket, TicketEvent, Topic
from servicedesk.tickets.services.customers import customer_merge
from servicedesk.tickets.services.history import ticket_customer_message_record
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_merge, ticket_rate, ticket_status_change
from tests.factories import (
    AgentFactory,
    CustomerFactory,
    OrganizationFactory,
    QueueFactory,
    TopicFactory,
    ticket_make,
)
from tests.reports.quality_reference import csat_figures, fcr_figures, one_touch_figures, reopen_figures

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
WEEK = timedelta(hours=168)
US = timedelta(microseconds=1)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


class Desk:
    """Writes timelines through the services, at the instants given."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.agent = cast(User, AgentFactory(username="ann", queues=[queue]))
        self.actor = Actor.agent(self.agent)
        self.topic = TopicFactory(slug="billing")
        self._messages = 0

    def ticket(
        self,
        customer: Customer,
        at: datetime,
        *,
        channel: str = "email",
        topic: Topic | str | None = "default",
        **kwargs: Any,
    ) -> Ticket:
        return ticket_make(
            customer=customer,
            queue=kwargs.pop("queue", self.queue),
            channel=channel,
            at=at,
            topic=self.topic if topic == "default" else topic,
            **kwargs,
        )

    def reply(self, ticket: Ticket, at: datetime, status: str | None = None) -> None:
        ticket_reply_create(
            ticket=ticket, author=self.agent, text="Here is the answer.", at=at, deliver=False, status=status
        )

    def customer_writes(self, ticket: Ticket, at: datetime) -> None:
        self._messages += 1
        ticket_customer_message_record(
            ticket=ticket,
            customer=ticket.customer,
            text="One more thing.",
            at=at,
            external_id=f"m{self._messages}",
        )

    def status(self, ticket: Ticket, status: str, at: datetime) -> None:
        ticket_status_change(ticket=ticket, status=status, actor=self.actor, at=at)

    def one_touch_solve(self, customer: Customer, *, at: datetime = T0, **kwargs: Any) -> Ticket:
        """Created at ``at``, one reply one hour later that solves it."""
        ticket = self.ticket(customer, at, **kwargs)
        self.reply(ticket, at + timedelta(hours=1), status="solved")
        return ticket


@pytest.fixture
def desk(queue: Queue) -> Desk:
    return Desk(queue)


FIGURE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "one_touch": one_touch_figures,
    "fcr": fcr_figures,
    "reopen": reopen_figures,
    "csat": csat_figures,
}


def in_scope_at(as_of: datetime) -> QuerySet[Ticket]:
    """The report's in-scope cohort at ``as_of`` (docs/metrics.md#in-scope), written with the ORM."""
    merged = TicketEvent.objects.filter(ticket=OuterRef("pk"), kind=TicketEvent.Kind.MERGED, at__lte=as_of)
    return Ticket.objects.filter(
        created_at__lte=as_of, initiator=Initiator.INBOUND, is_spam=False, is_deleted=False
    ).exclude(Exists(merged))


def assert_report_agrees(as_of: datetime) -> None:
    """The report's quality figures at ``as_of`` equal the figure functions' over the same cohort."""
    report = report_compute(start=date(2020, 1, 1), end=date(2030, 1, 1), as_of=as_of)
    cohort = in_scope_at(as_of)
    for figure, function in FIGURE_FUNCTIONS.items():
        assert report[figure] == function(cohort, as_of=as_of)[None], (figure, as_of)
        by_channel = function(cohort, as_of=as_of, group_by="channel")
        # The report also lists channels whose tickets are all out of scope, with empty figures.
        for key in report["by_channel"].keys() - by_channel.keys():
            by_channel[key] = quality_empty()[figure]
        assert {key: groups[figure] for key, groups in report["by_channel"].items()} == by_channel, (figure, as_of)


@pytest.fixture(autouse=True)
def report_agrees(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Records every ``as_of`` a test asks the figure functions about, then checks the report at each."""
    asked: list[datetime] = []
    module = sys.modules[__name__]

    def recording(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("window_hours", 168) == 168:
                asked.append(kwargs["as_of"])
            return function(*args, **kwargs)

        return call

    for name in ("one_touch_figures", "fcr_figures", "reopen_figures", "csat_figures"):
        monkeypatch.setattr(module, name, recording(getattr(module, name)))
    yield
    for as_of in sorted(set(asked)):
        assert_report_agrees(as_of)


def only(*tickets: Ticket) -> QuerySet[Ticket]:
    return Ticket.objects.filter(pk__in=[t.pk for t in tickets])


def fcr(ticket: Ticket, as_of: datetime) -> tuple[int, int]:
    figures = fcr_figures(only(ticket), as_of=as_of)[None]
    return figures["success"], figures["eligible"]


# One-touch


def test_one_touch_counts_solved_tickets_with_exactly_one_reply(desk, customer):
    one = desk.one_touch_solve(customer)  # 1 reply, solved
    two = desk.ticket(customer, T0)
    desk.reply(two, h(1))
    desk.reply(two, h(2), status="solved")  # 2 replies, solved
    silent = desk.ticket(customer, T0)
    desk.status(silent, "solved", h(1))  # 0 replies, solved
    waiting = desk.ticket(customer, T0)
    desk.reply(waiting, h(1))  # 1 reply, still new: not solved
    reopened = desk.one_touch_solve(customer)
    desk.status(reopened, "open", h(3))  # 1 reply, solved then reopened: not solved at as_of

    figures = one_touch_figures(only(one, two, silent, waiting, reopened), as_of=h(10))

    # solved = one, two, silent = 3; exactly one reply: one -> 1/3;
    # fewer than two replies: one, silent -> 2/3.
    assert figures == {None: {"count": 1, "solved": 3, "rate": 0.3333, "fewer_than_two": 0.6667}}


def test_one_touch_reads_status_and_replies_at_as_of(desk, customer):
    ticket = desk.one_touch_solve(customer)  # reply and solve at h1
    desk.status(ticket, "open", h(5))
    desk.reply(ticket, h(6), status="solved")  # second reply, solved again at h6

    # Before the solve: nothing is solved.
    assert one_touch_figures(only(ticket), as_of=h(1) - US)[None] == {
        "count": 0,
        "solved": 0,
        "rate": None,
        "fewer_than_two": None,
    }
    # At h1 exactly: solved with one reply -> 1/1.
    assert one_touch_figures(only(ticket), as_of=h(1))[None] == {
        "count": 1,
        "solved": 1,
        "rate": 1.0,
        "fewer_than_two": 1.0,
    }
    # Between the reopen and the second solve: unsolved.
    assert one_touch_figures(only(ticket), as_of=h(5))[None]["solved"] == 0
    # Today: solved with two replies -> 0/1, and not fewer than two.
    assert one_touch_figures(only(ticket), as_of=h(10))[None] == {
        "count": 0,
        "solved": 1,
        "rate": 0.0,
        "fewer_than_two": 0.0,
    }


def test_one_touch_counts_closed_as_solved_and_ignores_notes_and_customer_messages(desk, customer):
    ticket = desk.ticket(customer, T0)
    desk.customer_writes(ticket, h(0.5))
    desk.reply(ticket, h(1), status="solved")
    desk.status(ticket, "closed", h(2))

    # closed counts as solved; the customer's message is no reply: 1 reply -> 1/1.
    assert one_touch_figures(only(ticket), as_of=h(3))[None] == {
        "count": 1,
        "solved": 1,
        "rate": 1.0,
        "fewer_than_two": 1.0,
    }


def test_empty_cohort_gives_zero_counts_and_null_rates():
    empty = Ticket.objects.none()
    as_of = h(1)
    assert one_touch_figures(empty, as_of=as_of) == {
        None: {"count": 0, "solved": 0, "rate": None, "fewer_than_two": None},
    }
    assert fcr_figures(empty, as_of=as_of) == {None: {"success": 0, "eligible": 0, "rate": None, "window_hours": 168}}
    assert reopen_figures(empty, as_of=as_of) == {None: {"tickets": 0, "solved": 0, "rate": None, "total": 0}}
    assert csat_figures(empty, as_of=as_of) == {None: {"satisfied": 0, "rated": 0, "rate": None, "mean": None}}
    assert one_touch_figures(empty, as_of=as_of, group_by="channel") == {}


# FCR: eligibility


def test_fcr_success_is_eligible_exactly_when_the_window_has_passed(desk, customer):
    ticket = desk.one_touch_solve(customer)  # first reply and first solve at h1

    # h1 + 168 h <= as_of: eligible at that very instant, and a success.
    assert fcr(ticket, h(1) + WEEK) == (1, 1)
    # One microsecond earlier the window is still open: not eligible yet.
    assert fcr(ticket, h(1) + WEEK - US) == (0, 0)
    assert fcr_figures(only(ticket), as_of=h(1) + WEEK) == {
        None: {"success": 1, "eligible": 1, "rate": 1.0, "window_hours": 168},
    }


def test_fcr_window_is_configurable(desk, customer):
    ticket = desk.one_touch_solve(customer)  # first solve at h1

    assert fcr_figures(only(ticket), as_of=h(25), window_hours=24)[None] == {
        "success": 1,
        "eligible": 1,
        "rate": 1.0,
        "window_hours": 24,
    }
    assert fcr_figures(only(ticket), as_of=h(25) - US, window_hours=24)[None]["eligible"] == 0


def test_fcr_leaves_out_tickets_without_reply_before_the_first_solve_outbound_and_merged(desk, customer):
    as_of = h(500)
    silent = desk.ticket(customer, T0)
    desk.status(silent, "solved", h(1))
    desk.reply(silent, h(2))  # a reply after the first solve does not make it eligible
    outbound = desk.one_touch_solve(customer, initiator="outbound")
    target = desk.ticket(customer, T0, topic=None)
    merged = desk.one_touch_solve(customer, topic=None)
    ticket_merge(source=merged, target=target, actor=desk.actor, at=h(2))
    unsolved = desk.ticket(customer, T0)
    desk.reply(unsolved, h(1))

    for ticket in (silent, outbound, merged, unsolved):
        assert fcr(ticket, as_of) == (0, 0), ticket.subject


def test_fcr_counts_a_ticket_merged_away_only_after_as_of(desk, customer):
    target = desk.ticket(customer, T0, topic=None)
    ticket = desk.one_touch_solve(customer, topic=None)  # first reply and first solve at h1
    ticket_merge(source=ticket, target=target, actor=desk.actor, at=h(1) + WEEK + WEEK)

    # At h1 + 168 h the merge has not happened yet: eligible and a success.
    assert fcr(ticket, h(1) + WEEK) == (1, 1)
    # Once merged away, it leaves the FCR figures.
    assert fcr(ticket, h(1) + WEEK + WEEK) == (0, 0)


def test_fcr_first_solve_counts_even_after_a_later_reopen_and_solve(desk, customer):
    ticket = desk.one_touch_solve(customer)  # first solve at h1
    desk.status(ticket, "open", h(1) + WEEK + timedelta(hours=1))  # reopened after the window
    desk.status(ticket, "solved", h(1) + WEEK + timedelta(hours=2))

    # Judged on the first solve (h1): the later reopen is outside (h1, h1 + 168 h].
    assert fcr(ticket, h(400)) == (1, 1)


# FCR: (a) to (c)


def test_fcr_fails_with_two_replies_before_the_first_solve(desk, customer):
    ticket = desk.ticket(customer, T0)
    desk.reply(ticket, h(1))
    desk.reply(ticket, h(2), status="solved")

    # Eligible (2 >= 1 reply before the first solve), but (a) wants exactly one.
    assert fcr(ticket, h(2) + WEEK) == (0, 1)


def test_fcr_reply_after_the_first_solve_does_not_count_for_a(desk, customer):
    ticket = desk.one_touch_solve(customer)
    desk.reply(ticket, h(2))  # "you're welcome" after the solve

    assert fcr(ticket, h(1) + WEEK) == (1, 1)


def test_fcr_fails_when_the_customer_wrote_after_the_reply_before_the_solve(desk, customer):
    wrote_after = desk.ticket(customer, T0)
    desk.reply(wrote_after, h(1))
    desk.customer_writes(wrote_after, h(1.5))
    desk.status(wrote_after, "solved", h(2))
    wrote_before = desk.ticket(customer, T0, topic=None)
    desk.customer_writes(wrote_before, h(0.5))  # before the reply: allowed
    desk.reply(wrote_before, h(1))
    desk.status(wrote_before, "solved", h(2))
    wrote_after_solve = desk.ticket(customer, T0, topic=None)
    desk.reply(wrote_after_solve, h(1), status="solved")
    desk.customer_writes(wrote_after_solve, h(1.5))  # "thanks", after the solve: allowed

    as_of = h(2) + WEEK
    assert fcr(wrote_after, as_of) == (0, 1)
    assert fcr(wrote_before, as_of) == (1, 1)
    assert fcr(wrote_after_solve, as_of) == (1, 1)
    # Together: 2 successes of 3 eligible.
    assert fcr_figures(only(wrote_after, wrote_before, wrote_after_solve), as_of=as_of)[None] == {
        "success": 2,
        "eligible": 3,
        "rate": 0.6667,
        "window_hours": 168,
    }


def test_fcr_fails_with_a_reopen_inside_the_window_only(desk, customer):
    inside = desk.one_touch_solve(customer)
    desk.status(inside, "open", h(1) + WEEK)  # exactly at first solve + 168 h: inside (end included)
    outside = desk.one_touch_solve(customer, topic=None)
    desk.status(outside, "open", h(1) + WEEK + US)
    closed = desk.one_touch_solve(customer, topic=None)
    desk.status(closed, "closed", h(2))  # solved -> closed is no reopen

    as_of = h(400)
    assert fcr(inside, as_of) == (0, 1)
    assert fcr(outside, as_of) == (1, 1)
    assert fcr(closed, as_of) == (1, 1)


# FCR: (d) repeat contact


def _chat(desk: Desk, customer: Customer, *, ended: float, after_work_seconds: int) -> Ticket:
    """A chat ticket at T0: answered at once, three replies, its session ended ``ended`` hours later."""
    from servicedesk.tickets.models import Session

    ticket = desk.ticket(customer, T0, channel="chat")
    for minutes in (1, 2, 3):
        desk.reply(ticket, T0 + timedelta(minutes=minutes))
    Session.objects.create(
        channel="chat",
        customer=customer,
        ticket=ticket,
        agent=desk.agent,
        requested_at=T0,
        answered_at=T0 + timedelta(seconds=20),
        ended_at=h(ended),
        after_work_seconds=after_work_seconds,
    )
    return ticket


def test_fcr_of_a_chat_is_solved_by_the_end_of_its_first_session(desk, customer):
    # Three replies in one chat, solved in the wrap-up (inside the after-contact work): one interaction.
    ticket = _chat(desk, customer, ended=0.1, after_work_seconds=600)
    desk.status(ticket, "solved", h(0.1) + timedelta(seconds=300))
    assert fcr(ticket, h(0.2) + WEEK) == (1, 1)


def test_fcr_of_a_chat_solved_after_its_session_fails(desk, customer):
    ticket = _chat(desk, customer, ended=0.1, after_work_seconds=60)
    desk.status(ticket, "solved", h(2))
    assert fcr(ticket, h(3) + WEEK) == (0, 1)


def test_fcr_of_a_chat_counts_customer_messages_only_between_the_session_and_the_solve(desk, customer):
    ticket = _chat(desk, customer, ended=0.1, after_work_seconds=0)
    desk.customer_writes(ticket, h(0.5))
    desk.status(ticket, "solved", h(0.05))
    other = _chat(desk, CustomerFactory(name="Other"), ended=0.1, after_work_seconds=0)
    desk.customer_writes(other, h(0.5))
    desk.status(other, "solved", h(1))
    assert fcr(ticket, h(2) + WEEK) == (1, 1)
    assert fcr(other, h(2) + WEEK) == (0, 1)


def test_fcr_repeat_contact_on_another_channel_just_inside_the_window(desk, customer):
    ticket = desk.one_touch_solve(customer)  # first reply = first solve = h1
    desk.ticket(customer, h(1) + WEEK, channel="phone")  # same topic, at h1 + 168 h: inside

    assert fcr(ticket, h(400)) == (0, 1)


def test_fcr_repeat_contact_just_outside_the_window_does_not_count(desk, customer):
    ticket = desk.one_touch_solve(customer)
    desk.ticket(customer, h(1) + WEEK + US, channel="phone")  # one microsecond after the window
    desk.ticket(customer, h(1), channel="chat")  # at the first reply itself: (first reply, ...] excludes it

    assert fcr(ticket, h(400)) == (1, 1)


def test_fcr_repeat_contact_needs_the_same_person_topic_inbound_and_no_spam(desk, customer):
    ticket = desk.one_touch_solve(customer)
    other_topic = TopicFactory(slug="delivery")
    desk.ticket(customer, h(2), topic=other_topic)  # another topic
    desk.ticket(customer, h(2), topic=None)  # no topic
    desk.ticket(CustomerFactory(), h(2))  # another customer
    desk.ticket(customer, h(2), initiator="outbound")  # started by an agent
    desk.ticket(customer, h(2), is_spam=True)

    assert fcr(ticket, h(400)) == (1, 1)


def test_fcr_repeat_contact_counts_outside_the_cohort_and_period(desk, customer):
    ticket = desk.one_touch_solve(customer)
    repeat = desk.ticket(customer, h(30), channel="web")

    # The cohort holds the first ticket only; the repeat (created a day later)
    # is outside it and still fails (d).
    assert fcr_figures(only(ticket), as_of=h(400))[None]["success"] == 0
    assert repeat.pk not in only(ticket).values_list("pk", flat=True)


def test_fcr_repeat_contact_from_a_merged_customer_record(desk, customer):
    other_record = cast(Customer, CustomerFactory(name="Alice (phone)"))
    customer_merge(source=other_record, target=customer, actor=desk.actor, at=T0)
    # A ticket that still points at the merged record (as imported history may)
    # is the same person as the surviving record, in both directions.
    ticket = desk.one_touch_solve(customer)
    desk.ticket(other_record, h(5), channel="phone")
    assert fcr(ticket, h(400)) == (0, 1)

    other = desk.one_touch_solve(other_record, at=h(1000), topic=None)
    desk.ticket(customer, h(1005), topic=None, channel="chat", same_issue_as=other)
    assert fcr(other, h(2000)) == (0, 1)


def test_fcr_repeat_contact_through_a_same_issue_link_either_way(desk, customer):
    other_topic = TopicFactory(slug="delivery")
    # The later ticket links to the measured one.
    ticket = desk.one_touch_solve(customer)
    desk.ticket(customer, h(5), topic=other_topic, same_issue_as=ticket)
    assert fcr(ticket, h(400)) == (0, 1)

    # The measured ticket links to a ticket created inside its window (history
    # imported out of order: the linked ticket was recorded first).
    later = desk.ticket(customer, h(1005), topic=other_topic)
    linking = desk.one_touch_solve(customer, at=h(1000), topic=None, same_issue_as=later)
    assert fcr(linking, h(2000)) == (0, 1)


def test_fcr_duplicate_merged_before_the_first_reply_is_no_repeat(desk, customer):
    ticket = desk.ticket(customer, T0)
    duplicate = desk.ticket(customer, h(0.25), channel="web")  # the customer wrote twice
    ticket_merge(source=duplicate, target=ticket, actor=desk.actor, at=h(0.5))
    desk.reply(ticket, h(1), status="solved")

    assert fcr(ticket, h(400)) == (1, 1)


def test_fcr_duplicate_merged_after_the_first_reply_is_a_repeat(desk, customer):
    other_topic = TopicFactory(slug="delivery")
    # Created before the reply, merged in after it (inside the window): a repeat.
    ticket = desk.ticket(customer, T0)
    duplicate = desk.ticket(customer, h(0.25), channel="web", topic=other_topic)
    desk.reply(ticket, h(1))
    ticket_merge(source=duplicate, target=ticket, actor=desk.actor, at=h(1.5))
    desk.status(ticket, "solved", h(2))
    assert fcr(ticket, h(400)) == (0, 1)

    # Created after the reply under another topic and merged in: a repeat
    # through the merge, whatever its topic.
    second = desk.ticket(customer, h(1000), topic=None)
    desk.reply(second, h(1001), status="solved")
    late = desk.ticket(customer, h(1002), channel="phone", topic=other_topic)
    ticket_merge(source=late, target=second, actor=desk.actor, at=h(1003))
    assert fcr(second, h(2000)) == (0, 1)


def test_fcr_duplicate_created_before_the_reply_and_merged_after_the_window_is_no_repeat(desk, customer):
    ticket = desk.ticket(customer, T0)
    duplicate = desk.ticket(customer, h(0.25), channel="web", topic=None)
    desk.reply(ticket, h(1), status="solved")
    ticket_merge(source=duplicate, target=ticket, actor=desk.actor, at=h(1) + WEEK + US)

    # Neither its creation (h0.25) nor its merge lies in (h1, h1 + 168 h].
    assert fcr(ticket, h(400)) == (1, 1)


def test_fcr_as_of_in_the_past_ignores_a_later_merge(desk, customer):
    other_topic = TopicFactory(slug="delivery")
    ticket = desk.one_touch_solve(customer)  # first solve h1
    duplicate = desk.ticket(customer, h(5), channel="web", topic=other_topic)
    ticket_merge(source=duplicate, target=ticket, actor=desk.actor, at=h(300))

    # At h200 the other-topic ticket was not yet merged in: no repeat.
    assert fcr(ticket, h(200)) == (1, 1)
    # Once merged (h300), it is a duplicate created inside the window: a repeat.
    assert fcr(ticket, h(300)) == (0, 1)


# Reopens


def test_reopen_figures(desk, customer):
    once = desk.one_touch_solve(customer)  # solved h1
    desk.status(once, "open", h(2))
    desk.status(once, "solved", h(3))  # 1 reopen, solved
    closed = desk.one_touch_solve(customer)
    desk.status(closed, "closed", h(2))  # 0 reopens (solved -> closed), solved
    still_open = desk.one_touch_solve(customer)
    desk.status(still_open, "pending", h(2))  # 1 reopen, unsolved
    twice = desk.one_touch_solve(customer)
    desk.status(twice, "open", h(2))
    desk.status(twice, "closed", h(3))
    desk.status(twice, "open", h(4))
    desk.status(twice, "solved", h(5))  # 2 reopens (closed -> open counts), solved
    never = desk.ticket(customer, T0)  # new

    figures = reopen_figures(only(once, closed, still_open, twice, never), as_of=h(10))

    # solved at as_of: once, closed, twice = 3; with a reopen: once, twice = 2 -> 2/3;
    # transitions: once 1 + still_open 1 + twice 2 = 4.
    assert figures == {None: {"tickets": 2, "solved": 3, "rate": 0.6667, "total": 4}}


def test_reopen_figures_at_an_earlier_as_of(desk, customer):
    ticket = desk.one_touch_solve(customer)  # solved h1
    desk.status(ticket, "open", h(2))
    desk.status(ticket, "solved", h(3))
    desk.status(ticket, "open", h(4))

    # h1: solved, no reopen yet -> 0/1, total 0.
    assert reopen_figures(only(ticket), as_of=h(1))[None] == {"tickets": 0, "solved": 1, "rate": 0.0, "total": 0}
    # h3: solved again after one reopen -> 1/1, total 1.
    assert reopen_figures(only(ticket), as_of=h(3))[None] == {"tickets": 1, "solved": 1, "rate": 1.0, "total": 1}
    # h4: reopened again, unsolved -> no solved ticket, total 2.
    assert reopen_figures(only(ticket), as_of=h(4))[None] == {"tickets": 0, "solved": 0, "rate": None, "total": 2}


# CSAT


def test_csat_takes_the_latest_rating_at_as_of(desk, customer):
    changed = desk.one_touch_solve(customer)
    ticket_rate(ticket=changed, score=2, actor=desk.actor, at=h(2))
    ticket_rate(ticket=changed, score=5, actor=desk.actor, at=h(3))  # latest: 5
    four = desk.one_touch_solve(customer)
    ticket_rate(ticket=four, score=4, actor=desk.actor, at=h(2))  # 4
    three = desk.one_touch_solve(customer)
    ticket_rate(ticket=three, score=3, actor=desk.actor, at=h(2))  # 3
    late = desk.one_touch_solve(customer)
    ticket_rate(ticket=late, score=5, actor=desk.actor, at=h(20))  # after as_of: unrated
    revised_later = desk.one_touch_solve(customer)
    ticket_rate(ticket=revised_later, score=1, actor=desk.actor, at=h(2))
    ticket_rate(ticket=revised_later, score=5, actor=desk.actor, at=h(20))  # at as_of still 1
    unrated = desk.one_touch_solve(customer)

    figures = csat_figures(only(changed, four, three, late, revised_later, unrated), as_of=h(10))

    # latest scores at h10: 5, 4, 3, 1 -> rated 4, satisfied (4 or 5) 2 -> 2/4 = 0.5;
    # mean (5 + 4 + 3 + 1) / 4 = 3.25.
    assert figures == {None: {"satisfied": 2, "rated": 4, "rate": 0.5, "mean": 3.25}}
    # At h20 the later ratings count: 5, 4, 3, 5, 5 -> 4 of 5 satisfied = 0.8; mean 22 / 5 = 4.4.
    assert csat_figures(only(changed, four, three, late, revised_later, unrated), as_of=h(20))[None] == {
        "satisfied": 4,
        "rated": 5,
        "rate": 0.8,
        "mean": 4.4,
    }


def test_csat_mean_and_rate_are_rounded(desk, customer):
    tickets = [desk.one_touch_solve(customer) for _ in range(3)]
    for ticket, score in zip(tickets, (5, 4, 3), strict=True):
        ticket_rate(ticket=ticket, score=score, actor=desk.actor, at=h(2))
    ticket_rate(ticket=tickets[2], score=5, actor=desk.actor, at=h(3))  # 3 replaced by 5

    # Latest 5, 4, 5: mean 14 / 3 = 4.666... -> 4.67; all three satisfied -> 1.0.
    assert csat_figures(only(*tickets), as_of=h(5))[None] == {"satisfied": 3, "rated": 3, "rate": 1.0, "mean": 4.67}
    # At h2.5 the third is still 3: 2 of 3 satisfied -> 0.6667; mean 12 / 3 = 4.0.
    assert csat_figures(only(*tickets), as_of=h(2.5))[None] == {
        "satisfied": 2,
        "rated": 3,
        "rate": 0.6667,
        "mean": 4.0,
    }


# group_by


def test_group_by_channel_queue_priority_and_tier(desk, customer):
    gold = cast(Customer, CustomerFactory(name="Gold customer"))
    gold.organization = cast(Organization, OrganizationFactory(name="Gold Org", tier="gold"))
    gold.save(update_fields=["organization"])
    sales = QueueFactory(slug="sales")
    email_one = desk.one_touch_solve(customer, channel="email")  # email, support, normal, no organization
    email_two = desk.ticket(customer, T0, channel="email", priority="high")
    desk.reply(email_two, h(1))
    desk.reply(email_two, h(2), status="solved")  # two replies
    phone = desk.one_touch_solve(gold, channel="phone", queue=sales, priority="high")
    cohort = only(email_one, email_two, phone)
    as_of = h(10)

    # email: 2 solved, 1 one-touch -> 0.5; phone: 1 of 1.
    assert one_touch_figures(cohort, as_of=as_of, group_by="channel") == {
        "email": {"count": 1, "solved": 2, "rate": 0.5, "fewer_than_two": 0.5},
        "phone": {"count": 1, "solved": 1, "rate": 1.0, "fewer_than_two": 1.0},
    }
    assert one_touch_figures(cohort, as_of=as_of, group_by="queue__slug") == {
        "sales": {"count": 1, "solved": 1, "rate": 1.0, "fewer_than_two": 1.0},
        "support": {"count": 1, "solved": 2, "rate": 0.5, "fewer_than_two": 0.5},
    }
    # high: email_two (2 replies) and phone (1) -> 1/2; normal: email_one -> 1/1.
    assert one_touch_figures(cohort, as_of=as_of, group_by="priority") == {
        "high": {"count": 1, "solved": 2, "rate": 0.5, "fewer_than_two": 0.5},
        "normal": {"count": 1, "solved": 1, "rate": 1.0, "fewer_than_two": 1.0},
    }
    # No organization -> the empty group value "".
    assert one_touch_figures(cohort, as_of=as_of, group_by="customer__organization__tier") == {
        "": {"count": 1, "solved": 2, "rate": 0.5, "fewer_than_two": 0.5},
        "gold": {"count": 1, "solved": 1, "rate": 1.0, "fewer_than_two": 1.0},
    }


def test_group_by_an_annotation_of_the_cohort(desk, customer):
    bob = AgentFactory(username="bob", queues=[desk.queue])
    anns = desk.one_touch_solve(customer, assignee=desk.agent)
    ticket_rate(ticket=anns, score=5, actor=desk.actor, at=h(2))
    bobs = desk.one_touch_solve(customer, assignee=bob, topic=None)
    desk.status(bobs, "open", h(3))
    desk.status(bobs, "solved", h(4))
    ticket_rate(ticket=bobs, score=2, actor=desk.actor, at=h(5))
    nobody = desk.ticket(customer, T0, topic=None, channel="web")
    desk.status(nobody, "solved", h(1))
    cohort = only(anns, bobs, nobody).annotate(agent_email=F("assignee__email"))
    as_of = h(1) + WEEK + timedelta(hours=10)

    # Routing leaves the unassigned ticket alone when the queue is not routed.
    assert Ticket.objects.get(pk=nobody.pk).assignee_id is None
    assert reopen_figures(cohort, as_of=as_of, group_by="agent_email") == {
        "": {"tickets": 0, "solved": 1, "rate": 0.0, "total": 0},
        "ann@corp.example": {"tickets": 0, "solved": 1, "rate": 0.0, "total": 0},
        "bob@corp.example": {"tickets": 1, "solved": 1, "rate": 1.0, "total": 1},
    }
    assert csat_figures(cohort, as_of=as_of, group_by="agent_email") == {
        "": {"satisfied": 0, "rated": 0, "rate": None, "mean": None},
        "ann@corp.example": {"satisfied": 1, "rated": 1, "rate": 1.0, "mean": 5.0},
        "bob@corp.example": {"satisfied": 0, "rated": 1, "rate": 0.0, "mean": 2.0},
    }
    # ann's ticket is an FCR success; bob's reopened within the window; the
    # unassigned one had no reply before its solve: not eligible.
    assert fcr_figures(cohort, as_of=as_of, group_by="agent_email") == {
        "": {"success": 0, "eligible": 0, "rate": None, "window_hours": 168},
        "ann@corp.example": {"success": 1, "eligible": 1, "rate": 1.0, "window_hours": 168},
        "bob@corp.example": {"success": 0, "eligible": 1, "rate": 0.0, "window_hours": 168},
    }


# as_of


def test_as_of_in_the_past_ignores_later_events(desk, customer):
    ticket = desk.one_touch_solve(customer)  # reply + solve at h1
    ticket_rate(ticket=ticket, score=5, actor=desk.actor, at=h(2))
    # Everything below happens after the first as_of.
    desk.status(ticket, "open", h(1) + WEEK + timedelta(hours=1))
    desk.reply(ticket, h(1) + WEEK + timedelta(hours=2), status="solved")
    ticket_rate(ticket=ticket, score=1, actor=desk.actor, at=h(1) + WEEK + timedelta(hours=3))
    cohort = only(ticket)
    early = h(1) + WEEK

    assert one_touch_figures(cohort, as_of=early)[None] == {"count": 1, "solved": 1, "rate": 1.0, "fewer_than_two": 1.0}
    assert reopen_figures(cohort, as_of=early)[None] == {"tickets": 0, "solved": 1, "rate": 0.0, "total": 0}
    assert csat_figures(cohort, as_of=early)[None] == {"satisfied": 1, "rated": 1, "rate": 1.0, "mean": 5.0}
    assert fcr_figures(cohort, as_of=early)[None]["success"] == 1

    late = h(1) + WEEK + timedelta(hours=4)
    # Two replies now; one reopen; the latest rating is 1. FCR judges the first
    # solve and its window, which the later reopen does not touch.
    assert one_touch_figures(cohort, as_of=late)[None] == {"count": 0, "solved": 1, "rate": 0.0, "fewer_than_two": 0.0}
    assert reopen_figures(cohort, as_of=late)[None] == {"tickets": 1, "solved": 1, "rate": 1.0, "total": 1}
    assert csat_figures(cohort, as_of=late)[None] == {"satisfied": 0, "rated": 1, "rate": 0.0, "mean": 1.0}
    assert fcr_figures(cohort, as_of=late)[None]["success"] == 1


def test_current_status_is_not_read(desk, customer):
    ticket = desk.one_touch_solve(customer)
    # A stale status column must not change the figures: the timeline decides.
    Ticket.objects.filter(pk=ticket.pk).update(status="open", solved_at=None)

    assert one_touch_figures(only(ticket), as_of=h(2))[None]["solved"] == 1
    assert fcr(ticket, h(1) + WEEK) == (1, 1)

"""Writing macros and canned replies, and applying them to tickets (docs/macros.md).

Saving checks everything a later use depends on (the actions, every text's
placeholders, the scope the author may keep) and refuses with an
``ApplicationError`` naming the field, nothing written. Applying a macro
runs each action through the ticket services in one transaction, so each
leaves its own TicketEvent and a refused one undoes them all; under a
caller's key it is applied once, whatever the number of requests
(docs/macros.md#applying-once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.core.retention import rows_older_delete
from servicedesk.core.text import clean_line
from servicedesk.tickets.access import can_see_ticket, customers_conceal
from servicedesk.tickets.events import Actor
from servicedesk.tickets.locks import ticket_lock
from servicedesk.tickets.models import Customer, Message, Queue, Ticket
from servicedesk.tickets.services.idempotency import IDEMPOTENCY_HEADER, IdempotencyKeyReused
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.tickets import (
    ticket_assign,
    ticket_priority_change,
    ticket_queue_change,
    ticket_status_change,
    ticket_tags_set,
)
from servicedesk.tickets.statuses import Priority, Status

from . import actions as kinds
from .access import canned_replies_visible_to, macros_visible_to, manage_check, scope_check
from .models import CannedReply, Macro, MacroApplication, Scope, Scoped
from .templating import customer_language, template_check, text_for_ticket, translations_clean

NAME_MAX = 200
# Rows per statement and statements per run of macro_applications_prune.
PRUNE_BATCH = 1000
PRUNE_BATCHES = 50


class MacroRefused(ApplicationError):
    """An action of a macro was refused; nothing the macro did is kept.

    ``index`` is the action's position (from 0), ``steps`` what the actions
    before it did (rolled back), for a preview to show.
    """

    def __init__(self, *, index: int, kind: str, reason: str, steps: Sequence[StepResult]) -> None:
        super().__init__(
            _("Nothing was changed. Action %(n)d (%(kind)s) was refused: %(reason)s")
            % {"n": index + 1, "kind": kinds.kind_label(kind), "reason": reason},
            extra={"action": index},
        )
        self.index = index
        self.kind = kind
        self.reason = reason
        self.steps = list(steps)


@dataclass(frozen=True)
class StepResult:
    """What one action did: the value before and after (as people read them), or the message it wrote."""

    index: int
    kind: str
    before: str = ""
    after: str = ""
    text: str = ""
    message: Message | None = None

    @property
    def label(self) -> str:
        return kinds.kind_label(self.kind)

    @property
    def changed(self) -> bool:
        return self.message is not None or self.before != self.after


@dataclass
class MacroResult:
    """A macro applied: the ticket, its version right after the macro, and each action's step.

    ``replayed``: an earlier request with the same key applied it, and this is
    what that one did (its steps, the version it left); nothing was applied now.
    """

    macro: Macro
    ticket: Ticket
    steps: list[StepResult] = field(default_factory=list)
    version: int = 0
    replayed: bool = False

    @property
    def messages(self) -> list[Message]:
        return [step.message for step in self.steps if step.message is not None]


@dataclass
class MacroPreview:
    """What applying a macro would do now: its steps, or the refusal and the steps before it."""

    macro: Macro
    steps: list[StepResult]
    refused: MacroRefused | None = None


# ------------------------------------------------------------------ saving


@dataclass(frozen=True)
class MacroInput:
    name: str
    scope: str
    actions: Any
    queue: Queue | None = None


@dataclass(frozen=True)
class CannedReplyInput:
    name: str
    scope: str
    text: str
    translations: Any = None
    queue: Queue | None = None


def _scoped_fields(item: Scoped, *, user: User, name: str, scope: str, queue: Queue | None) -> None:
    """Check and set name, scope, owner and queue of ``item`` (new or one ``user`` may change)."""
    if item.pk is not None:
        manage_check(user, item)
    name = clean_line(name or "", max_length=NAME_MAX)
    if not name:
        raise ApplicationError(_("Give it a name."), field="name")
    scope_check(user, scope=scope, queue=queue)
    if scope == Scope.QUEUE and queue is None:
        raise ApplicationError(_("Choose the queue whose agents use it."), field="queue")
    item.name = name
    item.scope = scope
    item.queue = queue if scope == Scope.QUEUE else None
    if scope == Scope.PERSONAL:
        # A personal one is its author's; a manager turning a shared one personal makes it theirs.
        if item.owner_id is None or item.owner_id != user.pk:
            item.owner = user
    else:
        item.owner = None


def _stamp(item: Scoped, user: User, at: datetime) -> None:
    if item.pk is None:
        item.created_by = user
        item.created_at = at
    item.updated_at = at


def macro_save(*, data: MacroInput, user: User, macro: Macro | None = None, at: datetime | None = None) -> Macro:
    """Create a macro, or change ``macro`` (one ``user`` may see). Raises ApplicationError with the
    field (name, scope, queue, actions: each action and each text checked), or PermissionDenied
    (403) for a scope ``user`` may not keep or a macro they may not change; nothing is written."""
    at = at or timezone.now()
    item = macro if macro is not None else Macro()
    _scoped_fields(item, user=user, name=data.name, scope=data.scope, queue=data.queue)
    item.actions = kinds.actions_clean(data.actions)
    _stamp(item, user, at)
    item.save()
    return item


def canned_reply_save(
    *, data: CannedReplyInput, user: User, canned: CannedReply | None = None, at: datetime | None = None
) -> CannedReply:
    """Create or change a canned reply, as ``macro_save`` (fields name, scope, queue, text, translations)."""
    at = at or timezone.now()
    item = canned if canned is not None else CannedReply()
    _scoped_fields(item, user=user, name=data.name, scope=data.scope, queue=data.queue)
    text = data.text if isinstance(data.text, str) else ""
    if not text.strip():
        raise ApplicationError(_("The text cannot be empty."), field="text")
    try:
        template_check(text)
    except ApplicationError as exc:
        raise ApplicationError(exc.message, field="text") from None
    try:
        translations = translations_clean(data.translations)
    except ApplicationError as exc:
        raise ApplicationError(exc.message, field="translations") from None
    item.text = text
    item.translations = translations
    _stamp(item, user, at)
    item.save()
    return item


def scoped_delete(*, item: Scoped, user: User) -> None:
    """Delete a macro or canned reply ``user`` may see; PermissionDenied (403) unless they may change it."""
    manage_check(user, item)
    item.delete()


# ------------------------------------------------------------------ applying


def _text_ticket(ticket: Ticket, viewer: User | None) -> tuple[Ticket, Customer]:
    """``ticket`` with what its texts need loaded, and its customer as ``viewer`` may see it."""
    loaded = (
        Ticket.objects.select_related("customer", "queue").prefetch_related("customer__identities").get(pk=ticket.pk)
    )
    real = loaded.customer
    if viewer is not None:
        customers_conceal(viewer, [loaded])
    shown = loaded.customer
    loaded.customer = real
    return loaded, shown


def _label(kind: str, value: Any) -> str:
    if value is None:
        return str(_("Unassigned")) if kind == kinds.ASSIGNEE else ""
    if kind == kinds.STATUS:
        return str(Status(value).label)
    if kind == kinds.PRIORITY:
        return str(Priority(value).label)
    if kind == kinds.TAGS:
        return ", ".join(value) or str(_("no tags"))
    return str(value)


def _tag_names(ticket: Ticket) -> list[str]:
    return sorted(ticket.tags.values_list("name", flat=True))


def _apply_one(
    index: int, action: dict[str, Any], *, ticket: Ticket, customer: Customer, actor: Actor, at: datetime
) -> tuple[Ticket, StepResult]:
    """One action through its ticket service; returns the locked ticket as that service left it."""
    kind = action["type"]
    if kind == kinds.STATUS:
        before = ticket.status
        ticket = ticket_status_change(ticket=ticket, status=action["status"], actor=actor, at=at)
        return ticket, StepResult(index, kind, _label(kind, before), _label(kind, ticket.status))
    if kind == kinds.PRIORITY:
        before = ticket.priority
        ticket = ticket_priority_change(ticket=ticket, priority=action["priority"], actor=actor, at=at)
        return ticket, StepResult(index, kind, _label(kind, before), _label(kind, ticket.priority))
    if kind == kinds.QUEUE:
        queue = Queue.objects.filter(slug=action["queue"]).first()
        if queue is None:
            raise ApplicationError(_("The queue %(slug)s no longer exists.") % {"slug": action["queue"]})
        before_queue = ticket.queue.name
        ticket = ticket_queue_change(ticket=ticket, queue=queue, actor=actor, at=at)
        return ticket, StepResult(index, kind, before_queue, queue.name)
    if kind == kinds.ASSIGNEE:
        value = action["assignee"]
        assignee: User | None
        if value == kinds.ASSIGNEE_ME:
            if actor.user is None:
                raise ApplicationError(_('Only an agent applying the macro can be assigned as "me".'))
            assignee = actor.user
        elif value is None:
            assignee = None
        else:
            assignee = User.objects.filter(pk=value).first()
            if assignee is None:
                raise ApplicationError(_("The agent to assign no longer exists."))
        before_user = ticket.assignee
        ticket = ticket_assign(ticket=ticket, assignee=assignee, actor=actor, at=at)
        return ticket, StepResult(index, kind, _label(kind, before_user), _label(kind, assignee))
    if kind == kinds.TAGS:
        before_tags = _tag_names(ticket)
        names = set(action["tags"])
        wanted = {
            "add": set(before_tags) | names,
            "remove": set(before_tags) - names,
            "set": names,
        }[action["mode"]]
        ticket = ticket_tags_set(ticket=ticket, tags=sorted(wanted), actor=actor, at=at)
        return ticket, StepResult(index, kind, _label(kind, before_tags), _label(kind, sorted(wanted)))
    text = text_for_ticket(
        text=action["text"], translations=action["translations"], ticket=ticket, agent=actor.user, customer=customer
    )
    if kind == kinds.REPLY:
        message = ticket_reply_create(ticket=ticket, author=actor.user, text=text, actor=actor, at=at)
    else:
        message = ticket_note_create(ticket=ticket, author=actor.user, text=text, actor=actor, at=at)
    return message.ticket, StepResult(index, kind, text=message.text, message=message)


def macro_apply(
    *,
    macro: Macro,
    ticket: Ticket,
    actor: Actor,
    at: datetime | None = None,
    idempotency_key: str | None = None,
    request_digest: str = "",
) -> MacroResult:
    """Apply ``macro``'s actions to ``ticket`` in order, each through its ticket service
    (``ticket_status_change``, ``ticket_priority_change``, ``ticket_queue_change``,
    ``ticket_assign``, ``ticket_tags_set``, ``ticket_reply_create``, ``ticket_note_create``),
    in one transaction; each leaves its TicketEvent, all at ``at``. Replies are delivered after commit.

    With an agent behind ``actor`` (``actor.user``), the macro and the ticket must be ones they
    may see (NotFound otherwise). A macro of a queue applies to that queue's tickets only. A
    refused action (a move the statuses do not allow, an assignee outside the queue, a text
    that cannot be filled in) raises MacroRefused naming it, with nothing written. Safe to call
    from a task with the ids of a macro, a ticket and an agent.

    Idempotency key: (``actor.user``, ``idempotency_key``), stored with ``request_digest``
    (``idempotency.request_digest`` of the request) and what the application did, in its
    transaction (a refused macro leaves the key unused). The same key and digest again apply
    nothing and return the first result with ``replayed`` True; two requests with one key at
    once apply it once (the second waits for the first). The same key with another digest
    raises IdempotencyKeyReused (422), nothing written. A key needs an agent behind ``actor``
    (ValueError otherwise). Without a key, applying twice writes twice (a reply is a new
    message each time).
    """
    at = at or timezone.now()
    viewer = actor.user
    if viewer is not None:
        if not macros_visible_to(viewer).filter(pk=macro.pk).exists():
            raise NotFound(_("Macro not found."))
        if not can_see_ticket(viewer, ticket):
            raise NotFound(_("Ticket not found."))
    if idempotency_key is None:
        return _macro_apply(macro=macro, ticket=ticket, actor=actor, at=at)
    if viewer is None:
        raise ValueError("An idempotency key is an agent's: apply with Actor.agent.")
    with transaction.atomic():
        # The ticket's lock before the key's row: inserting that row shares a lock on the ticket
        # (its foreign key), so locking the ticket after it could deadlock with a request under
        # another key. A request under the same key waits here, then finds the key's row.
        ticket_lock(ticket.pk)
        record, created = _application_claim(
            user=viewer, key=idempotency_key, digest=request_digest, ticket=ticket, macro=macro, at=at
        )
        if not created:
            if record.request_digest != request_digest:
                raise IdempotencyKeyReused(
                    _(
                        "This Idempotency-Key was already used with a different request (method, address or body). "
                        "Send the same request to repeat it, or use a new key for a new request."
                    ),
                    field=IDEMPOTENCY_HEADER,
                )
            return _replayed(record, macro)
        result = _macro_apply(macro=macro, ticket=ticket, actor=actor, at=at)
        record.version = result.version
        record.steps = [_step_record(step) for step in result.steps]
        record.save(update_fields=["version", "steps"])
        return result


def _application_claim(
    *, user: User, key: str, digest: str, ticket: Ticket, macro: Macro, at: datetime
) -> tuple[MacroApplication, bool]:
    """The key's row, inserted by this call (True) or by an earlier request (False).

    A concurrent request holding the same key makes the insert wait until it
    commits (then the row is read) or rolls back (then this insert wins).
    """
    try:
        with transaction.atomic():
            record = MacroApplication.objects.create(
                user=user, key=key, request_digest=digest, ticket=ticket, macro=macro, created_at=at
            )
            return record, True
    except IntegrityError:
        return MacroApplication.objects.select_related("ticket").get(user=user, key=key), False


def _step_record(step: StepResult) -> dict[str, Any]:
    return {
        "index": step.index,
        "kind": step.kind,
        "before": step.before,
        "after": step.after,
        "text": step.text,
        "message": step.message.pk if step.message is not None else None,
    }


def _replayed(record: MacroApplication, macro: Macro) -> MacroResult:
    """What the application stored under ``record`` did, as its MacroResult (messages read again)."""
    ids = [item["message"] for item in record.steps if item.get("message") is not None]
    messages = Message.objects.in_bulk(ids)
    steps = [
        StepResult(
            index=item["index"],
            kind=item["kind"],
            before=item["before"],
            after=item["after"],
            text=item["text"],
            message=messages.get(item["message"]) if item.get("message") is not None else None,
        )
        for item in record.steps
    ]
    return MacroResult(macro=macro, ticket=record.ticket, steps=steps, version=record.version, replayed=True)


def _macro_apply(*, macro: Macro, ticket: Ticket, actor: Actor, at: datetime) -> MacroResult:
    """``macro_apply`` once its access checks passed: every action, in one transaction."""
    viewer = actor.user
    steps: list[StepResult] = []
    with transaction.atomic():
        current = ticket_lock(ticket.pk)
        if macro.queue_id is not None and macro.queue_id != current.queue_id:
            raise ApplicationError(_("This macro is for tickets of another queue."))
        _loaded, customer = _text_ticket(current, viewer)
        try:
            actions = kinds.actions_clean(macro.actions)
        except ApplicationError as exc:
            raise MacroRefused(index=int(exc.extra.get("action", 0)), kind="", reason=exc.message, steps=[]) from None
        for index, action in enumerate(actions):
            try:
                current, step = _apply_one(index, action, ticket=current, customer=customer, actor=actor, at=at)
            except ApplicationError as exc:
                raise MacroRefused(index=index, kind=action["type"], reason=exc.message, steps=steps) from None
            steps.append(step)
    return MacroResult(macro=macro, ticket=current, steps=steps, version=current.version)


class _DryRun(Exception):
    def __init__(self, result: MacroResult) -> None:
        super().__init__("dry run")
        self.result = result


def macro_preview(*, macro: Macro, ticket: Ticket, actor: Actor) -> MacroPreview:
    """What ``macro_apply`` would do to ``ticket`` now, without keeping anything: the macro is
    applied in a transaction that is then rolled back (no reply is sent, every after-commit
    effect is dropped), so the preview shows exactly its steps, or the action that would be
    refused and why. Raises NotFound and ApplicationError as ``macro_apply`` does."""
    try:
        with transaction.atomic():
            raise _DryRun(macro_apply(macro=macro, ticket=ticket, actor=actor))
    except _DryRun as dry:
        return MacroPreview(macro=macro, steps=dry.result.steps)
    except MacroRefused as exc:
        return MacroPreview(macro=macro, steps=exc.steps, refused=exc)


@dataclass(frozen=True)
class RenderedText:
    text: str
    language: str


def canned_reply_render(*, canned: CannedReply, ticket: Ticket, user: User) -> RenderedText:
    """``canned``'s text for ``ticket`` in the customer's language, placeholders filled in with
    what ``user`` may see of the customer. The caller checked that ``user`` sees both (NotFound
    otherwise here too). Raises ApplicationError (400) when the text cannot be filled in."""
    if not canned_replies_visible_to(user).filter(pk=canned.pk).exists() or not can_see_ticket(user, ticket):
        raise NotFound(_("Canned reply not found."))
    if canned.queue_id is not None and canned.queue_id != ticket.queue_id:
        raise ApplicationError(_("This canned reply is for tickets of another queue."))
    loaded, customer = _text_ticket(ticket, user)
    text = text_for_ticket(
        text=canned.text, translations=canned.translations, ticket=loaded, agent=user, customer=customer
    )
    return RenderedText(text=text, language=customer_language(loaded))


def macro_applications_prune(
    *, at: datetime | None = None, days: int | None = None, batch: int = PRUNE_BATCH, batches: int = PRUNE_BATCHES
) -> int:
    """Beat, hourly: forget the keys of macro applications made more than ``days`` ago
    (``SD_MACRO_APPLICATION_KEY_DAYS`` when not given); how many. The same request sent
    again afterwards applies the macro again; what the first did stays on the ticket."""
    at = at or timezone.now()
    days = int(settings.SERVICEDESK["MACRO_APPLICATION_KEY_DAYS"]) if days is None else days
    before = at - timedelta(days=days)
    return rows_older_delete(MacroApplication.objects.all(), before=before, batch=batch, batches=batches)

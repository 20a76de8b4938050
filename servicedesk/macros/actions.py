"""A macro's actions: what each kind holds, and the one check every writer uses (docs/macros.md#actions).

Actions are stored as a JSON list, in the order they are applied:

- ``{"type": "status", "status": "solved"}``
- ``{"type": "priority", "priority": "high"}``
- ``{"type": "queue", "queue": "billing"}`` (a queue's slug)
- ``{"type": "assignee", "assignee": 7}`` (an agent's id; ``"me"``: whoever applies the
  macro; ``null``: unassign)
- ``{"type": "tags", "mode": "add", "tags": ["refund"]}`` (``add``, ``remove`` or ``set``)
- ``{"type": "reply", "text": "...", "translations": {"zh-hans": "..."}}``: a public reply
- ``{"type": "note", "text": "...", "translations": {...}}``: an internal note

Whether a queue or an agent still exists, and whether a move is allowed on a
given ticket, is decided when the macro is applied, by the ticket services.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.services.tickets import tag_names_clean
from servicedesk.tickets.statuses import Priority, Status

from .templating import template_check, translations_clean

ACTIONS_MAX = 20
TAGS_MAX = 20

STATUS = "status"
PRIORITY = "priority"
QUEUE = "queue"
ASSIGNEE = "assignee"
TAGS = "tags"
REPLY = "reply"
NOTE = "note"

KIND_LABELS = {
    STATUS: gettext_lazy("Set status"),
    PRIORITY: gettext_lazy("Set priority"),
    QUEUE: gettext_lazy("Move to queue"),
    ASSIGNEE: gettext_lazy("Assign"),
    TAGS: gettext_lazy("Change tags"),
    REPLY: gettext_lazy("Add a public reply"),
    NOTE: gettext_lazy("Add an internal note"),
}
TAG_MODES = {
    "add": gettext_lazy("add"),
    "remove": gettext_lazy("remove"),
    "set": gettext_lazy("replace with"),
}
ASSIGNEE_ME = "me"
TEXT_KINDS = (REPLY, NOTE)


def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


def _step_error(index: int, kind: str, message: str) -> ApplicationError:
    return ApplicationError(
        _("Action %(n)d (%(kind)s): %(reason)s") % {"n": index + 1, "kind": kind_label(kind), "reason": message},
        field="actions",
        extra={"action": index},
    )


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 19:
        return int(value.strip())
    return None


def action_clean(index: int, raw: Any) -> dict[str, Any]:
    """One action in its stored form; raises ApplicationError (field ``actions``) naming it."""
    if not isinstance(raw, dict):
        raise ApplicationError(_("Action %(n)d is not an object.") % {"n": index + 1}, field="actions")
    kind = raw.get("type")
    if kind not in KIND_LABELS:
        raise ApplicationError(
            _("Action %(n)d: unknown type; use one of %(types)s.") % {"n": index + 1, "types": ", ".join(KIND_LABELS)},
            field="actions",
        )
    if kind == STATUS:
        if raw.get("status") not in Status.values:
            raise _step_error(index, kind, _("Unknown status."))
        return {"type": kind, "status": raw["status"]}
    if kind == PRIORITY:
        if raw.get("priority") not in Priority.values:
            raise _step_error(index, kind, _("Unknown priority."))
        return {"type": kind, "priority": raw["priority"]}
    if kind == QUEUE:
        slug = raw.get("queue")
        if not isinstance(slug, str) or not slug.strip() or len(slug) > 50:
            raise _step_error(index, kind, _("Name the queue by its slug."))
        return {"type": kind, "queue": slug.strip()}
    if kind == ASSIGNEE:
        value = raw.get("assignee")
        if value is None or value == "":
            return {"type": kind, "assignee": None}
        if value == ASSIGNEE_ME:
            return {"type": kind, "assignee": ASSIGNEE_ME}
        number = _whole_number(value)
        if number is None or number < 1:
            raise _step_error(index, kind, _('Give an agent\'s id, "me" or null to unassign.'))
        return {"type": kind, "assignee": number}
    if kind == TAGS:
        mode = raw.get("mode")
        if mode not in TAG_MODES:
            raise _step_error(index, kind, _("The mode is add, remove or set."))
        tags = raw.get("tags")
        if isinstance(tags, str):
            tags = tags.split(",")
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise _step_error(index, kind, _("Tags are a list of names."))
        names = tag_names_clean(tags)
        if len(names) > TAGS_MAX:
            raise _step_error(index, kind, _("At most %(n)d tags.") % {"n": TAGS_MAX})
        if not names and mode != "set":
            raise _step_error(index, kind, _("Name at least one tag."))
        return {"type": kind, "mode": mode, "tags": names}
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _step_error(index, kind, _("The text cannot be empty."))
    try:
        template_check(text)
        translations = translations_clean(raw.get("translations"))
    except ApplicationError as exc:
        raise _step_error(index, kind, exc.message) from None
    return {"type": kind, "text": text, "translations": translations}


def actions_clean(raw: Any) -> list[dict[str, Any]]:
    """The actions of a macro in their stored form, every text checked; raises
    ApplicationError (field ``actions``) with the first problem found."""
    if not isinstance(raw, list):
        raise ApplicationError(_("Actions are a list."), field="actions")
    if not raw:
        raise ApplicationError(_("A macro has at least one action."), field="actions")
    if len(raw) > ACTIONS_MAX:
        raise ApplicationError(_("A macro has at most %(n)d actions.") % {"n": ACTIONS_MAX}, field="actions")
    return [action_clean(index, item) for index, item in enumerate(raw)]

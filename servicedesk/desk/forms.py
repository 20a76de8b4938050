"""Forms of the agent workspace. They validate input; the services make the changes."""

from __future__ import annotations

import re
from typing import Any, cast

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import ADMIN, MANAGER, ROLES, is_agent
from servicedesk.accounts.signin import SignInLimitsMixin
from servicedesk.tickets.access import queues_visible_to
from servicedesk.tickets.forms import MultipleFileField, uploads_to_attachments
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.models import Queue, Ticket
from servicedesk.tickets.services.tickets import tag_names_clean
from servicedesk.tickets.statuses import Priority, Status


def desk_users() -> QuerySet[User]:
    """Everyone who works in the desk and can hold tickets."""
    return (
        User.objects.filter(is_active=True)
        .filter(Q(groups__name__in=ROLES) | Q(is_superuser=True))
        .distinct()
        .order_by("display_name", "username", "pk")
    )


def assignable_users(queue: Queue) -> QuerySet[User]:
    """Agents who can work ``queue``: its members plus managers and admins."""
    return (
        User.objects.filter(is_active=True)
        .filter(Q(queues=queue, groups__name__in=ROLES) | Q(groups__name__in=[MANAGER, ADMIN]) | Q(is_superuser=True))
        .distinct()
        .order_by("display_name", "username", "pk")
    )


def queues_for(user: Any) -> QuerySet[Queue]:
    """The queues ``user`` works, by the one rule in ``access``, in menu order."""
    return queues_visible_to(user).order_by("name", "pk")


class DeskAuthenticationForm(SignInLimitsMixin, AuthenticationForm):
    """Sign-in for the workspace: valid credentials of someone who is not an agent are refused;
    repeated failures wait (``accounts.signin``)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "not_agent": _("This sign-in is for service desk agents only."),
    }

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not is_agent(user):
            raise forms.ValidationError(self.error_messages["not_agent"], code="not_agent")


# An attachment key as ``attachment_store`` makes it (URL-safe base64).
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


class KeyListField(forms.Field):
    """Attachment keys posted as repeated values (ticked checkboxes); unknown keys are the service's to refuse."""

    widget = forms.MultipleHiddenInput
    MAX_KEYS = 50

    def to_python(self, value: Any) -> list[str]:
        values = [str(v) for v in (value or [])]
        if len(values) > self.MAX_KEYS or any(not _KEY.fullmatch(v) for v in values):
            raise forms.ValidationError(_("Choose the kept files from the list."), code="invalid")
        return list(dict.fromkeys(values))


# The ticket page's one form: a reply and the ticket's properties, with these buttons.
ACTION_SEND = "send"
ACTION_SEND_SOLVED = "send_solved"
ACTION_UPDATE = "update"
ACTIONS = (ACTION_SEND, ACTION_SEND_SOLVED, ACTION_UPDATE)
# The element id of that form; the properties' inputs join it with HTML's form attribute.
TICKET_FORM_ID = "reply-form"


class ReplyForm(forms.Form):
    """The reply or internal note of the ticket page's form; text is required unless only updating."""

    KIND_REPLY = "reply"
    KIND_NOTE = "note"

    text = forms.CharField(
        label=_("Message"), widget=forms.Textarea(attrs={"rows": 6}), max_length=100_000, required=False
    )
    kind = forms.ChoiceField(
        label=_("Type"),
        choices=[(KIND_REPLY, _("Public reply (sent to the customer)")), (KIND_NOTE, _("Internal note"))],
        widget=forms.RadioSelect,
        initial=KIND_REPLY,
        required=False,
    )
    attachments = MultipleFileField(label=_("Attachments"), required=False)
    # Files kept from the agent's unsent reply that go with this public reply (docs/drafts.md).
    kept_files = KeyListField(required=False)
    quote_history = forms.BooleanField(
        label=_("Quote the earlier conversation below the reply"),
        required=False,
    )
    # The newest customer message the page showed: a newer one holds the reply (docs/drafts.md).
    after_message = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    # "Send anyway" after that hold.
    force = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, require_text: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "reply_%s")
        super().__init__(*args, **kwargs)
        self.require_text = require_text

    def clean_kind(self) -> str:
        return self.cleaned_data.get("kind") or self.KIND_REPLY

    def clean_text(self) -> str:
        text: str = self.cleaned_data.get("text") or ""
        if self.require_text and not text.strip():
            raise forms.ValidationError(self.fields["text"].error_messages["required"], code="required")
        return text

    def clean_attachments(self) -> list[InboundAttachment]:
        return uploads_to_attachments(self.cleaned_data.get("attachments") or [])

    @property
    def has_text(self) -> bool:
        """Whether the agent typed something (kept on the page whatever else happens)."""
        return bool(str(self.data.get("text", "")).strip()) if self.is_bound else False


class TicketPropertiesForm(forms.Form):
    """Status, priority, assignee, queue and tags of one ticket.

    The page sends, as hidden fields, the values it was loaded with
    (``original_<field>``) and the ticket's ``version``. ``changes()`` returns
    only the fields the agent changed from those originals (from the ticket's
    current values when a client sends no originals), ready for
    ``ticket_update``; ``originals()`` what the service compares them with.
    Fields left out of a submission are left unchanged.
    """

    FIELDS = ("status", "priority", "assignee", "queue", "tags")

    status = forms.ChoiceField(label=_("Status"), choices=Status.choices, required=False)
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices, required=False)
    assignee = forms.ModelChoiceField(
        label=_("Assignee"), queryset=User.objects.none(), required=False, empty_label=_("Unassigned")
    )
    queue = forms.ModelChoiceField(label=_("Queue"), queryset=Queue.objects.none(), required=False, empty_label=None)
    tags = forms.CharField(
        label=_("Tags"),
        required=False,
        max_length=2000,
        help_text=_("Separate tags with commas."),
    )
    version = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=0)
    original_status = forms.CharField(required=False, widget=forms.HiddenInput)
    original_priority = forms.CharField(required=False, widget=forms.HiddenInput)
    original_assignee = forms.CharField(required=False, widget=forms.HiddenInput)
    original_queue = forms.CharField(required=False, widget=forms.HiddenInput)
    original_tags = forms.CharField(required=False, widget=forms.HiddenInput, max_length=2000)

    def __init__(self, *args: Any, ticket: Ticket, user: Any, **kwargs: Any) -> None:
        self.ticket = ticket
        kwargs.setdefault("auto_id", "props_%s")
        kwargs.setdefault("initial", self.values_of(ticket))
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs["form"] = TICKET_FORM_ID
        cast("forms.ModelChoiceField[Queue]", self.fields["queue"]).queryset = queues_for(user)
        assignee = cast("forms.ModelChoiceField[User]", self.fields["assignee"])
        # Any desk user is accepted here so that a queue change and a new
        # assignee can go together; the service checks the assignee against
        # the (new) queue. The menu offers those who can work the current queue.
        assignee.queryset = desk_users()
        assignee.widget.choices = [("", _("Unassigned"))] + [
            (user.pk, str(user)) for user in assignable_users(ticket.queue)
        ]

    @classmethod
    def values_of(cls, ticket: Ticket) -> dict[str, Any]:
        """The fields and their hidden originals as the page shows ``ticket`` now."""
        tags = ", ".join(sorted(tag.name for tag in ticket.tags.all()))
        values: dict[str, Any] = {
            "status": ticket.status,
            "priority": ticket.priority,
            "assignee": ticket.assignee_id or "",
            "queue": ticket.queue_id,
            "tags": tags,
        }
        return {**values, **{f"original_{name}": value for name, value in values.items()}, "version": ticket.version}

    @classmethod
    def rebased(cls, data: Any, *, ticket: Ticket, user: Any) -> TicketPropertiesForm:
        """The agent's choices kept, compared from now on with ``ticket``'s current values."""
        data = data.copy()
        for name, value in cls.values_of(ticket).items():
            if name.startswith("original_") or name == "version":
                data[name] = value
        return cls(data, ticket=ticket, user=user)

    def _original(self, name: str) -> Any:
        """What the page was loaded with, or the ticket's current value when the client sent none."""
        key = f"original_{name}"
        if key in self.data:
            return self.cleaned_data.get(key) or ""
        return self.values_of(self.ticket)[name]

    def changes(self) -> dict[str, Any]:
        data = self.cleaned_data
        changes: dict[str, Any] = {}
        if "status" in self.data and data["status"] and data["status"] != self._original("status"):
            changes["status"] = data["status"]
        if "priority" in self.data and data["priority"] and data["priority"] != self._original("priority"):
            changes["priority"] = data["priority"]
        if "assignee" in self.data:
            assignee = data["assignee"]
            if str(assignee.pk if assignee else "") != str(self._original("assignee") or ""):
                changes["assignee"] = assignee
        if "queue" in self.data and data["queue"] is not None and str(data["queue"].pk) != str(self._original("queue")):
            changes["queue"] = data["queue"]
        if "tags" in self.data:
            names = tag_names_clean(data["tags"].split(","))
            if names != tag_names_clean(str(self._original("tags")).split(",")):
                changes["tags"] = names
        return changes

    def originals(self) -> dict[str, Any]:
        """The loaded values of the fields the page sent originals for."""
        return {
            name: self.cleaned_data.get(f"original_{name}") or ""
            for name in self.FIELDS
            if f"original_{name}" in self.data
        }

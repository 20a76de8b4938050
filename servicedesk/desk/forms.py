"""Forms of the agent workspace. They validate input; the services make the changes."""

from __future__ import annotations

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


class ReplyForm(forms.Form):
    KIND_REPLY = "reply"
    KIND_NOTE = "note"

    text = forms.CharField(label=_("Message"), widget=forms.Textarea(attrs={"rows": 6}), max_length=100_000)
    kind = forms.ChoiceField(
        label=_("Type"),
        choices=[(KIND_REPLY, _("Public reply (sent to the customer)")), (KIND_NOTE, _("Internal note"))],
        widget=forms.RadioSelect,
        initial=KIND_REPLY,
    )
    status = forms.ChoiceField(
        label=_("Then set status"),
        required=False,
        choices=[
            ("", _("Keep current status")),
            (Status.OPEN, Status.OPEN.label),
            (Status.PENDING, Status.PENDING.label),
            (Status.ON_HOLD, Status.ON_HOLD.label),
            (Status.SOLVED, Status.SOLVED.label),
        ],
    )
    attachments = MultipleFileField(label=_("Attachments"), required=False)
    quote_history = forms.BooleanField(
        label=_("Quote the earlier conversation below the reply"),
        required=False,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Both forms on the ticket page have a "status" field; keep their ids apart.
        kwargs.setdefault("auto_id", "reply_%s")
        super().__init__(*args, **kwargs)

    def clean_attachments(self) -> list[InboundAttachment]:
        return uploads_to_attachments(self.cleaned_data.get("attachments") or [])


class TicketPropertiesForm(forms.Form):
    """Status, priority, assignee, queue and tags of one ticket.

    Fields left out of a submission are left unchanged; ``changes()`` returns
    only what differs from the ticket, ready for ``ticket_update``.
    """

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

    def __init__(self, *args: Any, ticket: Ticket, user: Any, **kwargs: Any) -> None:
        self.ticket = ticket
        kwargs.setdefault("auto_id", "props_%s")
        kwargs.setdefault(
            "initial",
            {
                "status": ticket.status,
                "priority": ticket.priority,
                "assignee": ticket.assignee_id,
                "queue": ticket.queue_id,
                "tags": ", ".join(tag.name for tag in ticket.tags.all()),
            },
        )
        super().__init__(*args, **kwargs)
        cast("forms.ModelChoiceField[Queue]", self.fields["queue"]).queryset = queues_for(user)
        assignee = cast("forms.ModelChoiceField[User]", self.fields["assignee"])
        # Any desk user is accepted here so that a queue change and a new
        # assignee can go together; the service checks the assignee against
        # the (new) queue. The menu offers those who can work the current queue.
        assignee.queryset = desk_users()
        if not self.is_bound:
            assignee.widget.choices = [("", _("Unassigned"))] + [
                (user.pk, str(user)) for user in assignable_users(ticket.queue)
            ]

    def changes(self) -> dict[str, Any]:
        ticket = self.ticket
        data = self.cleaned_data
        changes: dict[str, Any] = {}
        if "status" in self.data and data["status"] and data["status"] != ticket.status:
            changes["status"] = data["status"]
        if "priority" in self.data and data["priority"] and data["priority"] != ticket.priority:
            changes["priority"] = data["priority"]
        if "assignee" in self.data:
            assignee = data["assignee"]
            if (assignee.pk if assignee else None) != ticket.assignee_id:
                changes["assignee"] = assignee
        if "queue" in self.data and data["queue"] is not None and data["queue"].pk != ticket.queue_id:
            changes["queue"] = data["queue"]
        if "tags" in self.data:
            names = tag_names_clean(data["tags"].split(","))
            if names != sorted(tag.name for tag in ticket.tags.all()):
                changes["tags"] = names
        return changes

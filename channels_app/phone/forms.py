"""Forms of the workspace's call pages: the wrap-up after a call, ending a dialled call, and "Log a call"."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from servicedesk.accounts.models import User
from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.models import Customer, IdentityKind
from servicedesk.tickets.statuses import Status

from .models import CallDirection, CallOutcome
from .services import phone_number

NOTE_MAX = 10_000
# As far back as the telephone systems' events may go (api.AT_PAST).
OLDEST = timedelta(days=400)
_DURATION = re.compile(r"^\s*(?:(\d{1,4})\s*:\s*)?(\d{1,5})\s*$")


class WrapUpForm(forms.Form):
    note = forms.CharField(
        label=_("Note"), required=False, max_length=NOTE_MAX, widget=forms.Textarea(attrs={"rows": 3})
    )
    status = forms.ChoiceField(
        label=_("Ticket status"),
        required=False,
        choices=[("", _("Keep as it is")), *Status.choices],
    )


# How a call dialled from the desk went, as the agent says when they end it.
DIAL_OUTCOMES = [
    (CallOutcome.ANSWERED, _("Answered")),
    (CallOutcome.NOT_ANSWERED, _("No answer")),
    (CallOutcome.VOICEMAIL, _("Left a voicemail")),
]


class DialEndForm(WrapUpForm):
    """Ending a call dialled from the desk: how it went, and the wrap-up."""

    outcome = forms.ChoiceField(label=_("Outcome"), choices=DIAL_OUTCOMES)


class CallLogForm(forms.Form):
    number = forms.CharField(
        label=_("Phone number"),
        required=False,
        max_length=64,
        help_text=_("As the customer gave it; empty when it was withheld."),
    )
    direction = forms.ChoiceField(label=_("Direction"), choices=CallDirection.choices, initial=CallDirection.INBOUND)
    started_at = forms.DateTimeField(
        label=_("Started"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    duration = forms.CharField(
        label=_("Duration"),
        max_length=12,
        help_text=_("Minutes and seconds, such as 4:30, or whole minutes."),
    )
    outcome = forms.ChoiceField(label=_("Outcome"), choices=CallOutcome.choices, initial=CallOutcome.ANSWERED)
    note = forms.CharField(
        label=_("Note"), required=False, max_length=NOTE_MAX, widget=forms.Textarea(attrs={"rows": 4})
    )

    def __init__(self, *args: Any, customer: Customer, agent: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        known = (
            customer.identities.filter(kind=IdentityKind.PHONE).order_by("pk").values_list("value", flat=True).first()
        )
        if not self.initial.get("number"):
            self.fields["number"].initial = known or ""
        self.fields["started_at"].initial = timezone.localtime().replace(second=0, microsecond=0)

    def clean_number(self) -> str:
        try:
            return phone_number(self.cleaned_data["number"])
        except ApplicationError as exc:
            raise forms.ValidationError(_("This is not a phone number.")) from exc

    def clean_duration(self) -> int:
        match = _DURATION.match(self.cleaned_data["duration"])
        if match is None:
            raise forms.ValidationError(_("Write the duration as minutes:seconds, such as 4:30, or whole minutes."))
        minutes, rest = match.groups()
        seconds = int(minutes) * 60 + int(rest) if minutes is not None else int(rest) * 60
        if seconds > 24 * 3600:
            raise forms.ValidationError(_("A call lasts at most 24 hours."))
        return seconds

    def clean_started_at(self) -> datetime:
        value: datetime = self.cleaned_data["started_at"]
        if value > timezone.now() + timedelta(minutes=5):
            raise forms.ValidationError(_("A call cannot start in the future."))
        if value < timezone.now() - OLDEST:
            raise forms.ValidationError(_("A call to log started within the last 400 days."))
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "duration" in data:
            data["duration_seconds"] = data["duration"]
        return data

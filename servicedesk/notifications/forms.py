"""Forms of the ticket page's follow-up panel and of the preferences page. They validate; services write.

Times are typed in the agent's own zone (``datetime-local`` has none): the
views validate them with that zone active (``timezone.override``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from servicedesk.notifications.preferences import KindPreference
from servicedesk.notifications.reminders import NOTE_MAX

LOCAL_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class PendingUntilForm(forms.Form):
    until = forms.DateTimeField(label=_("Pending until"), widget=LOCAL_INPUT)


class ReminderForm(forms.Form):
    remind_at = forms.DateTimeField(label=_("Remind me at"), widget=LOCAL_INPUT)
    note = forms.CharField(label=_("Note"), required=False, max_length=NOTE_MAX)


class PreferencesForm(forms.Form):
    """Two check boxes per kind the user is offered: ``<kind>-in_app`` and ``<kind>-email`` (unticked
    is off). Only those kinds change: one the user is not offered keeps its value."""

    def __init__(self, *args: Any, preferences: list[KindPreference], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows = []
        self.kinds = [pref.kind for pref in preferences]
        for pref in preferences:
            in_app = f"{pref.kind}-in_app"
            email = f"{pref.kind}-email"
            self.fields[in_app] = forms.BooleanField(label=_("In the workspace"), required=False, initial=pref.in_app)
            self.fields[email] = forms.BooleanField(label=_("By email"), required=False, initial=pref.email)
            self.rows.append((pref, self[in_app], self[email]))

    def changes(self) -> dict[str, dict[str, bool]]:
        return {
            kind: {
                "in_app": bool(self.cleaned_data.get(f"{kind}-in_app")),
                "email": bool(self.cleaned_data.get(f"{kind}-email")),
            }
            for kind in self.kinds
        }

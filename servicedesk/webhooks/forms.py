"""The workspace's form to add a webhook endpoint; the service checks it (``webhook_endpoint_create``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from servicedesk.webhooks.models import EventType
from servicedesk.webhooks.services import DESCRIPTION_MAX


class EndpointCreateForm(forms.Form):
    url = forms.URLField(
        label=_("URL"),
        max_length=2000,
        assume_scheme="https",
        help_text=_("An http or https address that receives a POST for each event."),
    )
    description = forms.CharField(label=_("Description"), max_length=DESCRIPTION_MAX, required=False)
    event_types = forms.MultipleChoiceField(
        label=_("Events"), choices=EventType.choices, widget=forms.CheckboxSelectMultiple
    )
    allow_private_addresses = forms.BooleanField(
        label=_("Allow private addresses"),
        required=False,
        help_text=_("Deliver to private, loopback or link-local addresses (an integration inside your network)."),
    )

    def __init__(self, *args: Any, private_allowed: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not private_allowed:
            # Admins only: the field is not offered, and a value posted anyway is not read.
            del self.fields["allow_private_addresses"]

"""Forms of the help centre: the public contact form and the portal reply box.

They check input at the edge and turn it into plain values (attachments as
``InboundAttachment``) for the intake service; they never write anything.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from servicedesk.core.email_address import EmailAddressFormField
from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.forms import MultipleFileField, uploads_to_attachments
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.models import Topic

MESSAGE_MAX_LENGTH = 20000


class TopicChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Topic) -> str:
        return obj.label(get_language())


def submission_id_clean(value: Any) -> str:
    """The form's own id for one submission; a missing or malformed one gets a fresh id."""
    try:
        return str(uuid.UUID(str(value or "").strip()))
    except ValueError:
        return str(uuid.uuid4())


class SubmissionForm(forms.Form):
    """A form posted once per rendering: ``submission_id`` (a uuid4 made when the
    form is shown) is the idempotency key of what it sends, so posting the same
    page twice stores one message."""

    submission_id = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, data: Any = None, *args: Any, **kwargs: Any) -> None:
        if data is not None:
            # Echo back a usable id, so correcting and re-sending the form stays one submission.
            cleaned = submission_id_clean(data.get("submission_id"))
            if cleaned != data.get("submission_id"):
                data = data.copy()
                data["submission_id"] = cleaned
        kwargs.setdefault("initial", {}).setdefault("submission_id", str(uuid.uuid4()))
        super().__init__(data, *args, **kwargs)

    def clean_submission_id(self) -> str:
        return submission_id_clean(self.cleaned_data.get("submission_id"))


class ContactForm(SubmissionForm):
    name = forms.CharField(label=_("Your name"), max_length=200)
    email = EmailAddressFormField(label=_("Email address"))
    topic = TopicChoiceField(
        label=_("Topic"),
        queryset=Topic.objects.filter(is_public=True).order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label=_("Choose a topic (optional)"),
    )
    subject = forms.CharField(label=_("Subject"), max_length=200)
    message = forms.CharField(
        label=_("Message"), max_length=MESSAGE_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 10})
    )
    attachments = MultipleFileField(label=_("Attachments"), required=False)
    # Left empty by people; filled by robots that fill in every field.
    website = forms.CharField(
        label=_("Leave this field empty"),
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    def is_spam(self) -> bool:
        return bool(str(self.data.get("website", "")).strip())

    def clean_attachments(self) -> list[InboundAttachment]:
        return uploads_to_attachments(self.cleaned_data.get("attachments") or [])


class ReplyForm(SubmissionForm):
    """A reply needs text or an attachment (either may be left out, not both); the page says so
    instead of labelling either field optional."""

    NEEDS_CONTENT = _("Write a reply or attach a file.")

    message = forms.CharField(
        label=_("Your reply"),
        max_length=MESSAGE_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("Write a reply, attach a file, or both."),
    )
    attachments = MultipleFileField(label=_("Attachments"), required=False)

    def clean_attachments(self) -> list[InboundAttachment]:
        return uploads_to_attachments(self.cleaned_data.get("attachments") or [])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "message" in data and "attachments" in data and not data["message"].strip() and not data["attachments"]:
            self.add_error("message", self.NEEDS_CONTENT)
        return data


def form_error_add(form: forms.Form, exc: ApplicationError) -> None:
    """Show a service's refusal on the field it names, or above the form."""
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)


class SignInForm(forms.Form):
    """The address a sign-in link goes to (``/help/sign-in/``)."""

    email = EmailAddressFormField(label=_("Email address"))


SCORE_LABELS = (
    (5, _("5 - Very satisfied")),
    (4, _("4 - Satisfied")),
    (3, _("3 - Neither")),
    (2, _("2 - Dissatisfied")),
    (1, _("1 - Very dissatisfied")),
)


class SurveyForm(forms.Form):
    """A satisfaction survey's answer: a score from 1 to 5 and an optional comment."""

    score = forms.TypedChoiceField(
        label=_("How satisfied are you with our help?"),
        choices=SCORE_LABELS,
        coerce=int,
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(
        label=_("Comment"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 4})
    )


class AddEmailForm(forms.Form):
    email = EmailAddressFormField(label=_("Another email address"))


class AddPhoneForm(forms.Form):
    phone = forms.CharField(label=_("A phone number"), max_length=40)


class CodeForm(forms.Form):
    code = forms.CharField(label=_("The code we sent"), max_length=12)

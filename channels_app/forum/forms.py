"""Forms of the community pages: they check the shape of input; the services decide the rest."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from servicedesk.tickets.forms import MultipleFileField, uploads_to_attachments
from servicedesk.tickets.inbound import InboundAttachment

from .models import FlagKind, Kind
from .services import BODY_MAX, DISPLAY_NAME_MAX, TITLE_MAX


class TopicForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=Kind.choices, initial=Kind.QUESTION)
    title = forms.CharField(label=_("Title"), max_length=TITLE_MAX)
    body = forms.CharField(
        label=_("Your post"),
        max_length=BODY_MAX,
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text=_("Markdown: **bold**, *italic*, `code`, ``` for a code block, > for a quote, @handle to mention."),
    )
    attachments = MultipleFileField(
        label=_("Images and files"),
        required=False,
        help_text=_("Images are shown with the post; other files are offered to download."),
    )

    def clean_attachments(self) -> list[InboundAttachment]:
        return uploads_to_attachments(self.cleaned_data.get("attachments") or [])

    def __init__(self, *args: object, staff: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if not staff:
            kind = self.fields["kind"]
            assert isinstance(kind, forms.ChoiceField)
            kind.choices = [choice for choice in Kind.choices if choice[0] != Kind.ANNOUNCEMENT]


class ReplyForm(forms.Form):
    body = forms.CharField(label=_("Your reply"), max_length=BODY_MAX, widget=forms.Textarea(attrs={"rows": 6}))
    attachments = MultipleFileField(label=_("Images and files"), required=False)

    def clean_attachments(self) -> list[InboundAttachment]:
        return uploads_to_attachments(self.cleaned_data.get("attachments") or [])


class EditForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=TITLE_MAX, required=False)
    body = forms.CharField(label=_("Text"), max_length=BODY_MAX, widget=forms.Textarea(attrs={"rows": 10}))


class ProfileForm(forms.Form):
    display_name = forms.CharField(label=_("Name shown beside your posts"), max_length=DISPLAY_NAME_MAX)


class ToggleForm(forms.Form):
    """A reaction's button: ``on`` is "1" to add it, "0" to take it back."""

    on = forms.TypedChoiceField(choices=[("1", "1"), ("0", "0")], coerce=lambda value: value == "1")


class FlagForm(forms.Form):
    kind = forms.ChoiceField(label=_("Why"), choices=FlagKind.choices)
    message = forms.CharField(label=_("Anything to add (optional)"), max_length=500, required=False)

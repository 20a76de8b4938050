"""The desk's forms for macros and canned replies. They shape what was posted; the services check it."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import ROLES
from servicedesk.tickets.access import queues_visible_to
from servicedesk.tickets.models import Queue
from servicedesk.tickets.statuses import Priority, Status

from . import actions as kinds
from .access import scopes_for
from .models import CannedReply, Macro, Scope
from .services import CannedReplyInput, MacroInput
from .templating import translation_languages

TEXT_HELP = _(
    'Placeholders: {{ customer.first_name|default:"there" }}, {{ customer.last_name }}, {{ customer.name }}, '
    "{{ customer.email }}, {{ ticket.reference }}, {{ ticket.subject }}, {{ ticket.status }}, "
    "{{ ticket.priority }}, {{ ticket.queue }}, {{ agent.first_name }}, {{ agent.name }}."
)


# The apply forms' one-time id: a uuid made when the form is shown, the key the macro is applied
# under, so a form sent twice applies it once (docs/macros.md#applying-once).
SUBMISSION_FIELD = "submission_id"


def submission_id_new() -> str:
    """A fresh one-time id for a form that applies a macro."""
    return str(uuid.uuid4())


def submission_key(raw: str | None) -> str | None:
    """The posted one-time id, the key to apply under; None when the form sent none.
    ValueError when it is not a uuid."""
    value = (raw or "").strip()
    return str(uuid.UUID(value)) if value else None


def translation_field_name(code: str) -> str:
    return "text_" + code.replace("-", "_")


def agents() -> QuerySet[User]:
    return (
        User.objects.filter(is_active=True)
        .filter(Q(groups__name__in=ROLES) | Q(is_superuser=True))
        .distinct()
        .order_by("display_name", "username", "pk")
    )


def _action_choices() -> list[Any]:
    return [
        ("", _("(no action)")),
        (_("Set status"), [(f"status:{value}", label) for value, label in Status.choices]),
        (_("Set priority"), [(f"priority:{value}", label) for value, label in Priority.choices]),
        (_("Move to queue"), [(f"queue:{queue.slug}", queue.name) for queue in Queue.objects.order_by("name")]),
        (
            _("Assign"),
            [
                ("assignee:me", _("Whoever applies the macro")),
                ("assignee:", _("Nobody (unassign)")),
                *[(f"assignee:{user.pk}", str(user)) for user in agents()],
            ],
        ),
        (
            _("Change tags"),
            [
                ("tags:add", _("Add the tags")),
                ("tags:remove", _("Remove the tags")),
                ("tags:set", _("Set the tags to")),
            ],
        ),
        (_("Write"), [("reply:", _("A public reply")), ("note:", _("An internal note"))]),
    ]


class ScopedForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    scope = forms.ChoiceField(label=_("Scope"), choices=Scope.choices)
    queue = forms.ModelChoiceField(
        label=_("Queue"),
        queryset=Queue.objects.none(),
        required=False,
        help_text=_("For the queue scope: whose agents use it, on whose tickets."),
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        allowed = scopes_for(user)
        self.fields["scope"].choices = [(value, label) for value, label in Scope.choices if value in allowed]  # type: ignore[attr-defined]
        self.fields["queue"].queryset = queues_visible_to(user).order_by("name", "pk")  # type: ignore[attr-defined]


class MacroForm(ScopedForm):
    def macro_input(self, actions: list[dict[str, Any]]) -> MacroInput:
        data = self.cleaned_data
        return MacroInput(name=data["name"], scope=data["scope"], queue=data["queue"], actions=actions)

    @classmethod
    def initial_for(cls, macro: Macro) -> dict[str, Any]:
        return {"name": macro.name, "scope": macro.scope, "queue": macro.queue_id}


class ActionForm(forms.Form):
    """One row of a macro's actions: what to do, the tags for a tags action, the text of a reply or note."""

    action = forms.ChoiceField(label=_("Action"), required=False)
    tags = forms.CharField(label=_("Tags"), required=False, max_length=2000, help_text=_("Separate tags with commas."))
    text = forms.CharField(
        label=_("Text"),
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=TEXT_HELP,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = _action_choices()  # type: ignore[attr-defined]
        for code, name in translation_languages():
            self.fields[translation_field_name(code)] = forms.CharField(
                label=gettext("Text in %(language)s (optional)") % {"language": name},
                required=False,
                max_length=10_000,
                widget=forms.Textarea(attrs={"rows": 3}),
            )

    def is_blank(self) -> bool:
        return not (self.cleaned_data.get("action") or "")

    def raw_action(self) -> dict[str, Any]:
        """The row as an action for ``actions.actions_clean`` to check."""
        kind, _sep, value = str(self.cleaned_data["action"]).partition(":")
        if kind in kinds.TEXT_KINDS:
            translations = {
                code: self.cleaned_data.get(translation_field_name(code)) or ""
                for code, _name in translation_languages()
            }
            return {"type": kind, "text": self.cleaned_data.get("text") or "", "translations": translations}
        if kind == kinds.TAGS:
            return {"type": kind, "mode": value, "tags": self.cleaned_data.get("tags") or ""}
        if kind == kinds.ASSIGNEE:
            return {"type": kind, "assignee": value or None}
        return {"type": kind, kind: value}

    @staticmethod
    def initial_for(action: dict[str, Any]) -> dict[str, Any]:
        kind = action.get("type", "")
        if kind in kinds.TEXT_KINDS:
            initial = {"action": f"{kind}:", "text": action.get("text", "")}
            for code, text in (action.get("translations") or {}).items():
                initial[translation_field_name(code)] = text
            return initial
        if kind == kinds.TAGS:
            return {"action": f"tags:{action.get('mode')}", "tags": ", ".join(action.get("tags") or [])}
        if kind == kinds.ASSIGNEE:
            value = action.get("assignee")
            return {"action": f"assignee:{'' if value is None else value}"}
        return {"action": f"{kind}:{action.get(kind, '')}"}


ActionFormSet = forms.formset_factory(ActionForm, extra=3, can_order=True, can_delete=True, max_num=20, absolute_max=40)


def formset_actions(formset: Any) -> tuple[list[dict[str, Any]], list[ActionForm]]:
    """The non-blank rows that are not deleted, in the order given, as raw actions and their forms."""
    rows = [form for form in formset.ordered_forms if not form.is_blank()] if formset.can_order else []
    return [form.raw_action() for form in rows], rows


class CannedReplyForm(ScopedForm):
    text = forms.CharField(
        label=_("Text"), max_length=10_000, widget=forms.Textarea(attrs={"rows": 8}), help_text=TEXT_HELP
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for code, name in translation_languages():
            self.fields[translation_field_name(code)] = forms.CharField(
                label=gettext("Text in %(language)s (optional)") % {"language": name},
                required=False,
                max_length=10_000,
                widget=forms.Textarea(attrs={"rows": 6}),
            )

    def canned_input(self) -> CannedReplyInput:
        data = self.cleaned_data
        translations = {code: data.get(translation_field_name(code)) or "" for code, _name in translation_languages()}
        return CannedReplyInput(
            name=data["name"], scope=data["scope"], queue=data["queue"], text=data["text"], translations=translations
        )

    @staticmethod
    def initial_for(canned: CannedReply) -> dict[str, Any]:
        initial: dict[str, Any] = {
            "name": canned.name,
            "scope": canned.scope,
            "queue": canned.queue_id,
            "text": canned.text,
        }
        for code, text in (canned.translations or {}).items():
            initial[translation_field_name(code)] = text
        return initial

"""Placeholders in macro and canned reply texts: a sandboxed Django template (docs/macros.md#placeholders).

A text such as ``Hello {{ customer.first_name|default:"there" }}, about
{{ ticket.reference }}`` is a Django template rendered by an engine of its own:

- no loaders, no template libraries, autoescaping off (the result is plain
  text for a reply or a note);
- only the tags and filters named in ``TAGS`` and ``FILTERS``: the default
  ones minus those that reach outside the text (``url``, ``load``,
  ``include``, ``debug``, ``csrf_token``) and those whose output can grow
  without bound when chained or looped (``for``, ``add``, ``join``,
  ``center``, ``stringformat``, the escapers and the like);
- a context of plain, read-only mappings of strings holding only the values
  of ``PLACEHOLDERS``: no model instance is reachable, so
  ``{{ ticket.customer.user.password }}`` renders nothing.

A text is checked when it is saved (``template_check``) and rendered when it
is used (``template_render``); any failure is an ``ApplicationError`` with the
reason, never a server error.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from django.conf import settings
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.utils import translation
from django.utils.translation import gettext as _

from servicedesk.accounts.models import User
from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.models import Customer, IdentityKind, Ticket
from servicedesk.tickets.statuses import Priority, Status

TEMPLATE_MAX = 10_000
RENDERED_MAX = 100_000

# Every value a text may name, the whole of what it can reach.
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "customer": ("first_name", "last_name", "name", "email"),
    "ticket": ("reference", "subject", "status", "priority", "queue"),
    "agent": ("first_name", "name"),
}

TAGS = ("if", "with", "firstof", "comment", "spaceless", "verbatim", "templatetag", "filter", "autoescape", "now")
FILTERS = (
    "default",
    "default_if_none",
    "upper",
    "lower",
    "title",
    "capfirst",
    "first",
    "last",
    "length",
    "slice",
    "truncatechars",
    "truncatewords",
    "cut",
    "striptags",
    "wordcount",
    "yesno",
    "pluralize",
    "slugify",
    "divisibleby",
    "get_digit",
    "phone2numeric",
)


def _library() -> Library:
    library = Library()
    for name in TAGS:
        library.tag(name, defaulttags.register.tags[name])
    for name in FILTERS:
        library.filters[name] = defaultfilters.register.filters[name]
    return library


class _SandboxEngine(Engine):
    """An engine whose only built-in library is the whitelist above."""

    def __init__(self) -> None:
        super().__init__(dirs=[], app_dirs=False, loaders=[], libraries={}, builtins=[], autoescape=False)
        self.template_builtins = [_library()]


ENGINE = _SandboxEngine()


def language_code_norm(code: str) -> str:
    return (code or "").strip().lower().replace("_", "-")


def translation_languages() -> list[tuple[str, str]]:
    """The languages a text may be translated into (the UI's), other than the default."""
    default = language_code_norm(settings.LANGUAGE_CODE)
    return [(code, str(name)) for code, name in settings.LANGUAGES if language_code_norm(code) != default]


def translation_pick(text: str, translations: Mapping[str, str], language: str) -> str:
    """The text for ``language``: its own translation, else one of the same primary language
    (``zh`` and ``zh-cn`` take ``zh-hans``), else the default ``text``."""
    wanted = language_code_norm(language)
    if not wanted:
        return text
    normalised = {language_code_norm(code): value for code, value in translations.items() if value}
    if wanted in normalised:
        return normalised[wanted]
    primary = wanted.split("-")[0]
    for code in sorted(normalised):
        if code.split("-")[0] == primary:
            return normalised[code]
    return text


def _compile(source: str) -> Any:
    if len(source) > TEMPLATE_MAX:
        raise ApplicationError(_("A text has at most %(n)d characters.") % {"n": TEMPLATE_MAX})
    try:
        return ENGINE.from_string(source)
    except TemplateSyntaxError as exc:
        raise ApplicationError(_("The text's placeholders are not valid: %(reason)s") % {"reason": exc}) from None


def _frozen(values: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    return {name: MappingProxyType({key: str(value) for key, value in group.items()}) for name, group in values.items()}


def _render(template: Any, values: Mapping[str, Mapping[str, str]]) -> str:
    try:
        rendered = str(template.render(Context(_frozen(values), autoescape=False)))
    except Exception as exc:  # a filter's own failure: the agent's text, not the server, is at fault
        raise ApplicationError(
            _("The text's placeholders could not be filled in: %(reason)s") % {"reason": exc}
        ) from None
    if len(rendered) > RENDERED_MAX:
        raise ApplicationError(_("The filled-in text is longer than %(n)d characters.") % {"n": RENDERED_MAX})
    return rendered


def sample_values() -> dict[str, dict[str, str]]:
    """Values every placeholder has when a text is checked."""
    return {
        "customer": {"first_name": "Ada", "last_name": "Lovelace", "name": "Ada Lovelace", "email": "ada@example.com"},
        "ticket": {
            "reference": "SD-1001",
            "subject": "Sample",
            "status": str(Status.OPEN.label),
            "priority": str(Priority.NORMAL.label),
            "queue": "Support",
        },
        "agent": {"first_name": "Sam", "name": "Sam Agent"},
    }


def template_check(source: str) -> None:
    """Raise ApplicationError with the reason unless ``source`` compiles and renders, with every
    placeholder filled in and with every one empty."""
    template = _compile(source)
    filled = sample_values()
    _render(template, filled)
    _render(template, {name: dict.fromkeys(group, "") for name, group in filled.items()})


def template_render(source: str, values: Mapping[str, Mapping[str, str]]) -> str:
    """``source`` with the placeholders filled in from ``values`` (``placeholder_values``)."""
    return _render(_compile(source), values)


def _name_parts(name: str) -> tuple[str, str]:
    words = name.split()
    if not words:
        return "", ""
    return words[0], " ".join(words[1:])


def placeholder_values(
    *, ticket: Ticket, agent: User | None, customer: Customer | None = None
) -> dict[str, dict[str, str]]:
    """The values of ``PLACEHOLDERS`` for ``ticket``, its ``customer`` (by default the ticket's
    as loaded; a stand-in from ``access.customers_conceal`` gives no name) and ``agent``,
    with labels in the active language. The first name is the name's first word."""
    customer = customer or ticket.customer
    emails = sorted(
        (identity for identity in customer.identities.all() if identity.kind == IdentityKind.EMAIL),
        key=lambda identity: (identity.is_bouncing, identity.pk or 0),
    )
    first, last = _name_parts(customer.name)
    agent_first = ""
    if agent is not None:
        agent_first = agent.first_name or _name_parts(str(agent))[0]
    return {
        "customer": {
            "first_name": first,
            "last_name": last,
            "name": customer.name,
            "email": emails[0].value if emails else "",
        },
        "ticket": {
            "reference": ticket.reference or "",
            "subject": ticket.subject,
            "status": str(Status(ticket.status).label),
            "priority": str(Priority(ticket.priority).label),
            "queue": ticket.queue.name,
        },
        "agent": {"first_name": agent_first, "name": str(agent) if agent is not None else ""},
    }


def customer_language(ticket: Ticket) -> str:
    """The language the customer reads: the ticket's, else their record's, else the desk's default."""
    return ticket.language or ticket.customer.language or settings.LANGUAGE_CODE


def text_for_ticket(
    *,
    text: str,
    translations: Mapping[str, str],
    ticket: Ticket,
    agent: User | None,
    customer: Customer | None = None,
) -> str:
    """A macro's or canned reply's text for ``ticket``: in the customer's language when it has a
    translation for it, placeholders filled in with labels in that language."""
    language = customer_language(ticket)
    with translation.override(language):
        values = placeholder_values(ticket=ticket, agent=agent, customer=customer)
    return template_render(translation_pick(text, translations, language), values)


def translations_clean(raw: Any) -> dict[str, str]:
    """A ``{language code: text}`` mapping of the UI's other languages, each text checked;
    empty texts are dropped. Raises ApplicationError naming the language."""
    if raw in (None, ""):
        return {}
    if not isinstance(raw, Mapping):
        raise ApplicationError(_("Translations are an object of language codes and texts."))
    known = dict(translation_languages())
    cleaned: dict[str, str] = {}
    for code, value in raw.items():
        norm = language_code_norm(str(code))
        if norm not in known:
            raise ApplicationError(_("Unknown language: %(code)s.") % {"code": str(code)[:20]})
        if not isinstance(value, str):
            raise ApplicationError(_("A translation is a text."))
        if not value.strip():
            continue
        try:
            template_check(value)
        except ApplicationError as exc:
            raise ApplicationError(f"{known[norm]}: {exc.message}") from None
        cleaned[norm] = value
    return cleaned

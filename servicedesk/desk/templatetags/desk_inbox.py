"""The inbox's rows, written in Python: the page's most repeated markup.

Twenty-five rows of twelve cells were a third of an inbox page's time in the
template engine (about 30 ms at a million tickets, docs/performance.md); the
same markup joined here takes a few. Every value is escaped (``_e``, the
standard library's ``html.escape``, which Django's ``escape`` calls); the
labels are the same messages the template's header uses.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Collection, Iterable
from typing import Any

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.urls import reverse
from django.utils.dateformat import format as date_format
from django.utils.encoding import iri_to_uri
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import localtime
from django.utils.translation import gettext

from servicedesk.core.templatetags.datetimes import instant, instant_time

register = template.Library()

# The optional columns in the order they show, with their labels.
_COLUMN_LABELS = {
    "subject": "Subject",
    "customer": "Customer",
    "channel": "Channel",
    "status": "Status",
    "priority": "Priority",
    "due": "Next due",
    "queue": "Queue",
    "assignee": "Assignee",
    "tags": "Tags",
    "updated": "Updated",
    "created": "Created",
}


def _e(value: Any) -> str:
    """``value`` escaped for HTML text and attributes."""
    return html.escape(str(value))


def _url_maker(name: str, sample: str) -> Callable[[Any], str]:
    """A function giving ``reverse(name, args=[value])`` for each value with one ``reverse``
    (``sample``: a value the address accepts, found again in the address made from it)."""
    before, _, after = reverse(name, args=[sample]).partition(sample)
    return lambda value: f"{before}{iri_to_uri(str(value))}{after}"


def _sla_badge(view: Any) -> str:
    """``desk/_sla_badge.html`` for one row."""
    if not view:
        return '<span class="sla sla-none muted">—</span>'
    if view.running:
        return (
            f'<span class="sla {_e(view.css)}" data-sla-due="{_e(view.due_iso)}"'
            f' data-sla-warning="{_e(view.warning_iso)}">{_e(view.text)}</span>'
        )
    return f'<span class="sla {_e(view.css)}">{_e(view.text)}</span>'


@register.simple_tag
def inbox_rows(tickets: Iterable[Any], columns: Collection[str], posted_ids: Collection[Any], sla: Any) -> SafeString:
    """The ``<tr>`` of each ticket on the page, the chosen ``columns`` after the reference."""
    shown = [column for column in _COLUMN_LABELS if column in columns]
    labels = {column: _e(gettext(label)) for column, label in _COLUMN_LABELS.items()}
    reference_label, unassigned = _e(gettext("Reference")), _e(gettext("Unassigned"))
    ticket_url = _url_maker("desk:ticket", "SD-987654321")
    customer_url = _url_maker("desk:customer", "987654321")
    rows = []
    for row, ticket in enumerate(tickets):
        pk, reference = _e(ticket.pk), _e(ticket.reference)
        select = _e(gettext("Select %(reference)s") % {"reference": ticket.reference})
        checked = " checked" if ticket.pk in posted_ids else ""
        cells = [
            f'<td class="bulk-col"><input type="checkbox" class="bulk-select" name="ids" value="{pk}" form="bulk-form"'
            f' id="bulk-select-{pk}" aria-label="{select}"{checked}></td>',
            f'<td class="nowrap" data-label="{reference_label}"><a class="ticket-link"'
            f' href="{_e(ticket_url(ticket.reference))}">{reference}</a></td>',
        ]
        for column in shown:
            css, content = _cell(column, ticket, sla, unassigned, customer_url)
            cells.append(f'<td{css} data-label="{labels[column]}">{content}</td>')
        rows.append(
            f'<tr class="ticket-row" data-reference="{reference}" data-row="{row}" data-ticket="{pk}">{"".join(cells)}</tr>'
        )
    return mark_safe("\n".join(rows))  # noqa: S308 (every value escaped above)


def _cell(column: str, ticket: Any, sla: Any, unassigned: str, customer_url: Callable[[Any], str]) -> tuple[str, str]:
    """(the cell's class attribute, its markup) for one column of one row."""
    if column == "subject":
        subject = _e(ticket.subject)
        return ' class="subject"', f'<span class="subject-text" title="{subject}">{subject}</span>'
    if column == "customer":
        if getattr(ticket.customer, "concealed", False):
            return "", f'<span class="customer-concealed">{_e(ticket.customer)}</span>'
        return "", f'<a href="{_e(customer_url(ticket.customer_id))}">{_e(ticket.customer)}</a>'
    if column == "channel":
        return "", _e(ticket.channel_label)
    if column == "status":
        content = f'<span class="badge status-{_e(ticket.status)}">{_e(ticket.status_label)}</span>'
        if ticket.pending_until:
            until = gettext("until %(when)s") % {"when": instant(ticket.pending_until)}
            content += f' <small class="muted pending-until">{_e(until)}</small>'
        return "", content
    if column == "priority":
        return "", f'<span class="badge priority-{_e(ticket.priority)}">{_e(ticket.priority_label)}</span>'
    if column == "due":
        return ' class="sla-cell"', _sla_badge(sla.headline(ticket))
    if column == "queue":
        return "", _e(ticket.queue.name)
    if column == "assignee":
        return "", _e(ticket.assignee) if ticket.assignee else f'<span class="muted">{unassigned}</span>'
    if column == "tags":
        return "", "".join(f'<span class="badge tag">{_e(tag.name)}</span> ' for tag in ticket.tags.all())
    if column == "updated":
        when = ticket.updated_at
        return (
            ' class="when"',
            f'<time datetime="{_e(date_format(localtime(when), "c"))}" title="{_e(instant(when))}">'
            f"{_e(naturaltime(when))}</time>",
        )
    # instant_time is markup already escaped by format_html.
    return ' class="when"', str(instant_time(ticket.created_at))

"""Query parameters of the ticket list: the shared filters, plus the SLA ones checked strictly.

The plain filters follow ``TicketFilters.from_params`` (an unknown value simply
matches nothing); the SLA instants and minutes are validated here, so a bad
value answers 400 with the field's error instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from servicedesk.tickets.selectors import TicketFilters

# A year of minutes: far enough ahead for any target, small enough to stay a valid instant.
BREACHING_WITHIN_MAX = 366 * 24 * 60


class TicketSlaParamsSerializer(serializers.Serializer):
    due_after = serializers.DateTimeField(
        required=False, help_text=_("Next SLA due instant at or after this ISO 8601 instant.")
    )
    due_before = serializers.DateTimeField(
        required=False, help_text=_("Next SLA due instant before this ISO 8601 instant.")
    )
    breaching_within = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=BREACHING_WITHIN_MAX,
        help_text=_("Minutes: the next SLA due instant is after now and at most this far ahead."),
    )


SLA_PARAMS = tuple(TicketSlaParamsSerializer().fields)


class TicketIdParamsSerializer(serializers.Serializer):
    customer = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text=_("Customer id, a whole number.")
    )


def _ids_checked(params: Any, filters: TicketFilters) -> TicketFilters:
    """``customer`` must be a whole number: ``1.5`` or ``abc`` is a 400 field error, not "no filter"."""
    raw = (params.get("customer") or "").strip()
    if not raw:
        return filters
    checked = TicketIdParamsSerializer(data={"customer": raw})
    checked.is_valid(raise_exception=True)
    return dataclasses.replace(filters, customer=checked.validated_data["customer"])


def ticket_filters_from(params: Any, *, agent: bool = True) -> TicketFilters:
    """The list filters from the query string; raises ValidationError (400) for a bad SLA parameter or id.

    Not ``agent`` (a customer's token): the SLA and the tags are the desk's working
    data, so their filters and the SLA sort are left out, like parameters the list
    does not know (a tag filter would tell a customer which tags their tickets carry).
    """
    filters = _ids_checked(params, TicketFilters.from_params(params))
    if not agent:
        sort = "-updated" if filters.sort.lstrip("-") == "due" else filters.sort
        return dataclasses.replace(filters, due=None, sort=sort, tags=(), tags_any=False)
    given = {name: params.get(name) for name in SLA_PARAMS if (params.get(name) or "").strip()}
    if not given:
        return filters
    checked = TicketSlaParamsSerializer(data=given)
    checked.is_valid(raise_exception=True)
    return dataclasses.replace(filters, **checked.validated_data)

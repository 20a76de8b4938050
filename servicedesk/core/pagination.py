"""One rule for every paginated page and the API (docs/conventions.md, "Pages of a list"):
a page number that is not a whole number, or past the last page, answers 404, as the API does.

Counts are capped: a list counts its rows up to ``COUNT_CAP`` and then says
"more than that" (``count_capped``), because counting a million tickets costs
the database a whole scan on every page (docs/performance.md), while a person
or a client needs the exact figure only for lists they can page through.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.paginator import InvalidPage, Page, Paginator
from django.db.models import QuerySet
from django.http import Http404

#: Rows a list counts exactly; past it the count is ``COUNT_CAP`` and ``count_capped`` is true.
COUNT_CAP = 10_000


def count_cap_set(items: QuerySet[Any], cap: int) -> QuerySet[Any]:
    """``items`` counted up to ``cap`` rows instead of ``COUNT_CAP`` (a list whose every row
    costs a test, such as a search too broad to rank). The cap rides on the query, which
    Django copies with every clone (``filter``, ``order_by``, a slice)."""
    items.query.count_cap = cap  # type: ignore[attr-defined]
    return items


class CappedPaginator(Paginator):
    """A Paginator whose ``count`` stops at ``COUNT_CAP`` (one ``COUNT(*)`` over at most
    ``COUNT_CAP + 1`` rows), so the last reachable page is the one holding row ``COUNT_CAP``.
    A queryset given its own cap by ``count_cap_set`` stops there instead."""

    @cached_property
    def cap(self) -> int:
        items = self.object_list
        return int(getattr(items.query, "count_cap", COUNT_CAP)) if isinstance(items, QuerySet) else COUNT_CAP

    @cached_property
    def _counted(self) -> int:
        items = self.object_list
        if isinstance(items, QuerySet):
            # The order and the computed columns change no count (at most cap + 1 rows either way):
            # without them the database counts by whichever plan is cheapest, and a search's rank
            # (a JSON object of every match) is not built for the count.
            return items.order_by().values("pk")[: self.cap + 1].count()
        return min(len(items), self.cap + 1)

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.cap)

    @cached_property
    def count_capped(self) -> bool:
        """True when the list holds more rows than it counted."""
        return self._counted > self.cap


def page_or_404(items: Any, per_page: int, number: Any) -> Page:
    """Page ``number`` (the first when not given) of ``items``; Http404 for ``?page=999`` or ``?page=x``.

    The first page of an empty list exists (it shows "nothing here").
    """
    try:
        return CappedPaginator(items, per_page).page(number or 1)
    except InvalidPage as exc:
        raise Http404(str(exc)) from exc

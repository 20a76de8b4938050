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

from django.core.paginator import EmptyPage, InvalidPage, Page, Paginator
from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext_lazy as _

#: Rows a list counts exactly; past it the count is ``COUNT_CAP`` and ``count_capped`` is true.
COUNT_CAP = 10_000
#: Rows a list paged without a count (``uncounted``) reaches; a page past them is a 404.
UNCOUNTED_ROWS = 1_000


def uncounted(items: QuerySet[Any]) -> QuerySet[Any]:
    """``items`` paged without a count: each page is fetched with one row more, which tells
    whether another page follows, and the count is the rows up to the end of the page with
    ``count_capped`` true while more follow ("more than 50 tickets", "page 2" without "of N").

    For a list whose every row costs a test (a search too broad to rank): counting even a
    thousand of its rows tests every row the database walks to find them, tens of thousands
    for a term in a few percent of the tickets, while a page needs only the rows it shows.
    Pages reach row ``UNCOUNTED_ROWS`` (a page further would test every row before it:
    page 40,000 of a common word took 8 s); past it is a 404. The mark rides on the query,
    which Django copies with every clone (``filter``, ``order_by``, a slice)."""
    items.query.uncounted = True  # type: ignore[attr-defined]
    return items


def ids_first(items: QuerySet[Any], rows: QuerySet[Any]) -> QuerySet[Any]:
    """``items`` paged by their ids first: one query lists the ids of every row in order (at
    most ``COUNT_CAP`` + 1, which counts them too), a second fetches the page's rows by id
    from ``rows`` (the same access rule and related rows, without the list's conditions).

    For a list narrowed to a known set of a few thousand ids (a ranked search): the
    database reads them by primary key once instead of twice (a count, then a page), and
    sorts ids rather than whole rows joined to their customers, queues and agents. The
    rows are fetched without the list's conditions because PostgreSQL multiplies the
    selectivity of the page's ids with the list's and, expecting no row, read the whole
    table for 25 (165 ms)."""
    items.query.ids_rows = rows  # type: ignore[attr-defined]
    return items


class CappedPaginator(Paginator):
    """A Paginator whose ``count`` stops at ``COUNT_CAP`` (one ``COUNT(*)`` over at most
    ``COUNT_CAP + 1`` rows), so the last reachable page is the one holding row ``COUNT_CAP``.
    A queryset marked ``uncounted`` is paged without a count."""

    @property
    def cap(self) -> int:
        return COUNT_CAP

    @cached_property
    def uncounted(self) -> bool:
        """Whether the list is paged without a count (``uncounted``)."""
        items = self.object_list
        return isinstance(items, QuerySet) and bool(getattr(items.query, "uncounted", False))

    @cached_property
    def ids_first(self) -> bool:
        """Whether the list is paged by its ids first (``ids_first``)."""
        items = self.object_list
        return isinstance(items, QuerySet) and getattr(items.query, "ids_rows", None) is not None

    @cached_property
    def _ids(self) -> list[Any]:
        """The ids of the list in order, up to one past the cap (``ids_first``)."""
        items: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        return list(items.values_list("pk", flat=True)[: self.cap + 1])

    def page(self, number: Any) -> Page:
        if self.ids_first:
            number = self.validate_number(number)
            bottom = (number - 1) * self.per_page
            ids = self._ids[bottom : bottom + self.per_page]
            by_id: QuerySet[Any] = self.object_list.query.ids_rows  # type: ignore[attr-defined]
            found = {row.pk: row for row in by_id.filter(pk__in=ids)}
            return self._get_page([found[pk] for pk in ids if pk in found], number, self)  # type: ignore[attr-defined]
        if not self.uncounted:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        if bottom >= UNCOUNTED_ROWS:
            raise EmptyPage(_("That page contains no results"))
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage(_("That page contains no results"))
        # Seen: every row before this page, its own and the one after it, if any.
        self.__dict__["_seen"] = (bottom, bottom + len(rows))
        for figure in ("num_pages", "_counted", "count", "count_capped"):
            self.__dict__.pop(figure, None)
        return self._get_page(rows[: self.per_page], number, self)  # type: ignore[attr-defined]

    def validate_number(self, number: Any) -> int:
        if not self.uncounted:
            return super().validate_number(number)
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError) as exc:
            raise InvalidPage(_("That page number is not an integer")) from exc
        if number < 1:
            raise EmptyPage(_("That page number is less than 1"))
        return number

    @cached_property
    def _seen(self) -> tuple[int, int]:
        """(rows before the page, rows up to one past it) of the page fetched; the first page's
        when none was (one query of ``per_page + 1`` rows)."""
        return 0, len(self.object_list[: self.per_page + 1])

    @cached_property
    def num_pages(self) -> int:
        if not self.uncounted:
            return super().num_pages
        seen = self._seen[1]
        # The page fetched, and the next one when a row after it was seen, up to UNCOUNTED_ROWS.
        return max(1, min(-(-seen // self.per_page), -(-UNCOUNTED_ROWS // self.per_page)))

    @cached_property
    def _counted(self) -> int:
        items = self.object_list
        if self.uncounted:
            return self._seen[1]
        if self.ids_first:
            return len(self._ids)
        if isinstance(items, QuerySet):
            # The order and the computed columns change no count (at most cap + 1 rows either way):
            # without them the database counts by whichever plan is cheapest, and a search's rank
            # (a JSON object of every match) is not built for the count.
            return items.order_by().values("pk")[: self.cap + 1].count()
        return min(len(items), self.cap + 1)

    @cached_property
    def count(self) -> int:
        if self.uncounted:
            bottom, seen = self._seen
            return min(seen, bottom + self.per_page)
        return min(self._counted, self.cap)

    @cached_property
    def count_capped(self) -> bool:
        """True when the list holds more rows than it counted."""
        if self.uncounted:
            bottom, seen = self._seen
            return seen > bottom + self.per_page
        return self._counted > self.cap


def page_or_404(items: Any, per_page: int, number: Any) -> Page:
    """Page ``number`` (the first when not given) of ``items``; Http404 for ``?page=999`` or ``?page=x``.

    The first page of an empty list exists (it shows "nothing here").
    """
    try:
        return CappedPaginator(items, per_page).page(number or 1)
    except InvalidPage as exc:
        raise Http404(str(exc)) from exc

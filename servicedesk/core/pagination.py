"""One rule for every paginated page and the API (docs/conventions.md, "Pages of a list"):
a page number that is not a whole number, or past the last page, answers 404, as the API does."""

from __future__ import annotations

from typing import Any

from django.core.paginator import InvalidPage, Page, Paginator
from django.http import Http404


def page_or_404(items: Any, per_page: int, number: Any) -> Page:
    """Page ``number`` (the first when not given) of ``items``; Http404 for ``?page=999`` or ``?page=x``.

    The first page of an empty list exists (it shows "nothing here").
    """
    try:
        return Paginator(items, per_page).page(number or 1)
    except InvalidPage as exc:
        raise Http404(str(exc)) from exc

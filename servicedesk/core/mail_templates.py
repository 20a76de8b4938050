"""Mail text rendered by a template engine of its own, which loads only the tag libraries a mail names.

Django's engine for pages (``TEMPLATES`` in the settings) imports the tag
library of every installed app the first time it renders anything: REST
framework's brings its serializers and renderers. A process that renders one
mail and ends (``manage.py ingest_email``, run by a mail server for each
message) would pay for all of them. This engine finds templates where the
page engine does (the ``DIRS`` of ``TEMPLATES`` and each app's ``templates``
folder) and knows only the libraries its caller names, so a mail template
that loads another one fails loudly instead of loading it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template import Context, Engine

# The libraries a plain-text mail of the ticket domain loads.
MAIL_LIBRARIES: Mapping[str, str] = {
    "i18n": "django.templatetags.i18n",
    "datetimes": "servicedesk.core.templatetags.datetimes",
}


def mail_render(
    template_name: str, context: Mapping[str, Any], *, libraries: Mapping[str, str] = MAIL_LIBRARIES
) -> str:
    """``template_name`` rendered with ``context`` by an engine that knows only ``libraries``.

    Autoescaping is on, as in pages; a plain-text template turns it off with
    ``{% autoescape off %}``. The active language and time zone apply, as with
    ``render_to_string``.
    """
    engine = _engine(tuple(sorted(libraries.items())))
    return engine.get_template(template_name).render(Context(dict(context)))


@functools.cache
def _engine(libraries: tuple[tuple[str, str], ...]) -> Engine:
    pages: dict[str, Any] = settings.TEMPLATES[0]
    options: dict[str, Any] = pages.get("OPTIONS", {})
    return Engine(
        dirs=[str(path) for path in pages.get("DIRS", [])],
        app_dirs=bool(pages.get("APP_DIRS", False)),
        libraries=dict(libraries),
        debug=bool(options.get("debug", settings.DEBUG)),
    )


@receiver(setting_changed)
def _engine_reset(*, setting: str, **kwargs: Any) -> None:
    if setting in {"TEMPLATES", "INSTALLED_APPS", "DEBUG"}:
        _engine.cache_clear()

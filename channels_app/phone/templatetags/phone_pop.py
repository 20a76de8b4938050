"""``{% phone_pops %}``: where a desk page shows the screen pops of calls (static/phone/pop.js).

The container is filled from ``/desk/calls/pops/`` when the page opens, and
a pop is read again from ``/desk/calls/<id>/pop/`` whenever the page's live
stream says the call changed (``pushes.py``) or reconnects.
"""

from __future__ import annotations

from django import template
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _

register = template.Library()


@register.simple_tag
def phone_pops() -> str:
    return format_html(
        '<div id="phone-pops" class="phone-pops" role="region" aria-label="{}" aria-live="polite"'
        ' data-pops="{}" data-pop="{}"></div><script src="{}" defer></script>',
        _("Calls"),
        reverse("calls:pops"),
        reverse("calls:pop", args=[0]),
        static("phone/pop.js"),
    )

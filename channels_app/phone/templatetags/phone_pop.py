"""``{% phone_pops %}``: where a desk page shows the screen pops of calls (static/phone/pop.js).

The container is filled from ``/desk/calls/pops/`` when the page opens, and
a pop is read again from ``/desk/calls/<id>/pop/`` whenever the page's live
stream says the call changed (``pushes.py``) or reconnects. A ``tel:`` link
of a ticket page posts to ``/desk/calls/dial/`` when clicked.
"""

from __future__ import annotations

from django import template
from django.middleware.csrf import get_token
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _

register = template.Library()


@register.simple_tag(takes_context=True)
def phone_pops(context: template.Context) -> str:
    # data-dial and data-csrf: a tel: link clicked on a ticket page records the outbound call (pop.js).
    request = context.get("request")
    return format_html(
        '<div id="phone-pops" class="phone-pops" role="region" aria-label="{}" aria-live="polite"'
        ' data-pops="{}" data-pop="{}" data-dial="{}" data-csrf="{}"></div><script src="{}" defer></script>',
        _("Calls"),
        reverse("calls:pops"),
        reverse("calls:pop", args=[0]),
        reverse("calls:dial"),
        get_token(request) if request is not None else "",
        static("phone/pop.js"),
    )

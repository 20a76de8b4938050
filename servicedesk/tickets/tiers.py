"""The names people read for an organization's service tier (the stored value is a free code)."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

TIER_LABELS: dict[str, Promise] = {
    "standard": _("Standard"),
    "vip": _("VIP"),
    "premium": _("Premium"),
    "enterprise": _("Enterprise"),
}


def tier_label(code: str) -> str:
    """The translated name of tier ``code``; an unknown code as written, with its first letter capitalised."""
    label = TIER_LABELS.get(code)
    if label is not None:
        return str(label)
    return code[:1].upper() + code[1:]

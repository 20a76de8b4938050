"""Who may read reports: managers and admins (the ``tickets.view_reports`` permission)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

REPORTS_PERMISSION = "tickets.view_reports"


def can_view_reports(user: Any) -> bool:
    """Managers and admins (their role groups hold ``tickets.view_reports``); never agents or customers."""
    return bool(getattr(user, "is_authenticated", False) and user.is_active and user.has_perm(REPORTS_PERMISSION))


class CanViewReports(BasePermission):
    message = _("Only managers may read reports.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return can_view_reports(request.user)

"""The ledger of imported history records (shared/HISTORY_FORMAT.md)."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ImportedRecord(models.Model):
    """One history record already applied, so a second import of it changes nothing.

    Records without an id of their own (status, priority, assign, merge, rating,
    identity_merge) are known by ``key``: the SHA-256 of their canonical JSON.
    See servicedesk/tickets/importer/__init__.py.
    """

    key = models.CharField(max_length=64, unique=True)
    kind = models.CharField(_("kind"), max_length=20)
    applied_at = models.DateTimeField(_("applied"), auto_now_add=True)

    class Meta:
        verbose_name = _("imported record")
        verbose_name_plural = _("imported records")

    def __str__(self) -> str:
        return f"{self.kind} {self.key[:12]}"

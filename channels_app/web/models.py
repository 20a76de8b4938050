"""Customers' sign-in to the help centre by emailed link, and their help-centre sessions (docs/help-centre.md).

Neither is a Django user session: a customer signed in here is never an
agent, and an agent's session never shows a customer's requests
(``signin.portal_customer``). Links and session keys are stored as SHA-256
digests only, so a copy of the database signs nobody in.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class SignInLink(models.Model):
    """A single-use sign-in link mailed to one of a customer's addresses."""

    customer = models.ForeignKey(
        "tickets.Customer", on_delete=models.CASCADE, related_name="+", verbose_name=_("customer")
    )
    address = models.EmailField(_("address"))
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(_("created"))
    expires_at = models.DateTimeField(_("expires"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)

    class Meta:
        verbose_name = _("sign-in link")
        verbose_name_plural = _("sign-in links")
        indexes = [models.Index(fields=["expires_at"], name="web_signin_link_expires")]

    def __str__(self) -> str:
        return f"{self.address} ({self.created_at:%Y-%m-%d %H:%M})"


class CustomerSession(models.Model):
    """A browser signed in to the help centre as a customer (the ``sd_help`` cookie holds its key)."""

    customer = models.ForeignKey(
        "tickets.Customer", on_delete=models.CASCADE, related_name="+", verbose_name=_("customer")
    )
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(_("created"))
    last_seen_at = models.DateTimeField(_("last seen"))
    expires_at = models.DateTimeField(_("expires"))
    user_agent = models.CharField(_("browser"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("customer session")
        verbose_name_plural = _("customer sessions")
        indexes = [
            models.Index(fields=["customer"], name="web_customer_session_customer"),
            models.Index(fields=["expires_at"], name="web_customer_session_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} ({self.created_at:%Y-%m-%d %H:%M})"


class IdentityVerification(models.Model):
    """A signed-in customer proving an address (a link mailed to it) or a number (a code sent to it)."""

    customer = models.ForeignKey(
        "tickets.Customer", on_delete=models.CASCADE, related_name="+", verbose_name=_("customer")
    )
    kind = models.CharField(_("kind"), max_length=10)
    value = models.CharField(_("value"), max_length=320)
    # SHA-256 of the link's token, or of the code with the row's salt.
    digest = models.CharField(max_length=64, db_index=True)
    salt = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(_("created"))
    expires_at = models.DateTimeField(_("expires"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)

    class Meta:
        verbose_name = _("address check")
        verbose_name_plural = _("address checks")
        indexes = [models.Index(fields=["customer", "-created_at"], name="web_verification_customer")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

"""One customer record per person, reached through many identities."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Organization(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    tier = models.CharField(_("service tier"), max_length=50, default="standard", db_index=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    name = models.CharField(_("name"), max_length=200, blank=True)
    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customers",
        verbose_name=_("organization"),
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customer",
        verbose_name=_("sign-in"),
    )
    language = models.CharField(_("language"), max_length=10, blank=True)
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True)
    # Sees the requests of everyone in their organization in the help centre (docs/help-centre.md).
    is_org_manager = models.BooleanField(_("organization manager"), default=False)
    # Set when this record was found to be the same person as another one.
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="merged_from",
    )
    external_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(_("created"), db_index=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        indexes = [models.Index(fields=["name"])]

    # True only on the unsaved stand-in of ``access.customer_concealed``: pages show it without a
    # link to the customer's page, which answers "not found" to that viewer.
    concealed: bool = False

    def __str__(self) -> str:
        return self.name or f"#{self.pk}"

    @property
    def tier(self) -> str:
        return self.organization.tier if self.organization_id else "standard"  # type: ignore[union-attr]


class IdentityKind(models.TextChoices):
    EMAIL = "email", _("Email address")
    PHONE = "phone", _("Phone number")
    CHAT = "chat", _("Chat visitor")
    FORUM = "forum", _("Forum account")


class Identity(models.Model):
    """An address by which a customer reaches us; normalised.

    An email address (or chat, forum id) is one customer's; a phone number
    may be several customers' (a household's landline, an office's
    switchboard): a call from it is matched to the first who had it, and the
    agent is shown the others to choose from (docs/phone.md, "The caller").
    """

    class BouncingChange(models.TextChoices):
        """Why ``is_bouncing`` last changed (see services.customers)."""

        NONE = "", "-"
        BOUNCE = "bounce", _("a delivery report for mail we sent to it")
        REFUSED = "refused", _("the receiving mail server refused it")
        MAIL = "mail", _("mail arrived from it")
        AGENT = "agent", _("cleared by an agent")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(_("kind"), max_length=10, choices=IdentityKind.choices)
    value = models.CharField(_("value"), max_length=320)
    is_bouncing = models.BooleanField(_("bouncing"), default=False)
    # The last change of ``is_bouncing``: when, why and (for an agent) by whom.
    bouncing_changed_at = models.DateTimeField(null=True, blank=True)
    bouncing_change = models.CharField(max_length=10, choices=BouncingChange.choices, default="", blank=True)
    bouncing_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("identity")
        verbose_name_plural = _("identities")
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "value"], condition=~models.Q(kind="phone"), name="identity_kind_value_unique"
            ),
            models.UniqueConstraint(
                fields=["customer", "kind", "value"],
                condition=models.Q(kind="phone"),
                name="identity_phone_per_customer_unique",
            ),
        ]
        indexes = [
            # Every look-up by address (whatever its kind: a query's kind is often a
            # parameter, which a partial index cannot serve), first holder first.
            models.Index(fields=["kind", "value", "id"], name="identity_kind_value"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class CustomerMerge(models.Model):
    """One customer record merged into another, with what moved, so that it can be undone exactly
    (``services.customers.customer_merge`` / ``customer_unmerge``)."""

    source = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges_out")
    target = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges_in")
    at = models.DateTimeField(_("merged"))
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_source = models.CharField(max_length=20, blank=True)
    # The ids that moved (identities, tickets, sessions, surveys, records merged into the source before),
    # the phone numbers both held (kept once, on the target), and the sign-in account that moved.
    moved = models.JSONField(default=dict)
    undone_at = models.DateTimeField(_("undone"), null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("customer merge")
        verbose_name_plural = _("customer merges")
        indexes = [
            models.Index(fields=["target", "-at"], name="customer_merge_target"),
            models.Index(fields=["source", "-at"], name="customer_merge_source"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id} -> {self.target_id}"


class CustomerEvent(models.Model):
    """A change to a customer record itself (a merge, its undoing), on both records concerned."""

    class Kind(models.TextChoices):
        MERGED_INTO = "merged_into", _("Merged into another record")
        MERGED_IN = "merged_in", _("Another record merged in")
        UNMERGED = "unmerged", _("Merge undone: separate again")
        UNMERGED_OUT = "unmerged_out", _("Merge undone: the other record left")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    other = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    merge = models.ForeignKey(CustomerMerge, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["customer", "-at"], name="customer_event_at")]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.kind}"


class MergeSuggestion(models.Model):
    """Two records that may be one person, for an agent to look at: a customer proved an address (or a
    number) that another record holds. Proving never merges anything by itself."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merge_suggestions")
    other = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=IdentityKind.choices)
    value = models.CharField(max_length=320)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "other", "kind", "value"], name="merge_suggestion_once")
        ]
        indexes = [models.Index(fields=["other"], name="merge_suggestion_other")]

    def __str__(self) -> str:
        return f"{self.customer_id} ~ {self.other_id} ({self.kind})"

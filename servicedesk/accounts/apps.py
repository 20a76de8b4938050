from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "servicedesk.accounts"
    label = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        from servicedesk.accounts.roles import roles_sync

        post_migrate.connect(roles_sync, sender=self, dispatch_uid="servicedesk.roles_sync")

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "servicedesk.accounts"
    label = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        from django.apps import apps

        from servicedesk.accounts.roles import roles_sync

        # After the last app's post_migrate, when every app's permissions exist.
        last = list(apps.get_app_configs())[-1]
        post_migrate.connect(roles_sync, sender=last, dispatch_uid="servicedesk.roles_sync")

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ForumChannelConfig(AppConfig):
    name = "channels_app.forum"
    label = "forum_channel"
    verbose_name = _("Community forum")

from django.apps import AppConfig


class WebChannelConfig(AppConfig):
    name = "channels_app.web"
    label = "web_channel"
    verbose_name = "Web channel"

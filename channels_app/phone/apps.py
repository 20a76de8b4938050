from django.apps import AppConfig


class PhoneChannelConfig(AppConfig):
    name = "channels_app.phone"
    label = "phone_channel"
    verbose_name = "Phone channel"

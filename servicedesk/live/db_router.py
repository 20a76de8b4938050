"""Without Redis, the channel layer's tables live in a SQLite file of their own (settings: ``channel_layer``)."""

from __future__ import annotations

from typing import Any

LAYER_APP = "channels_lite"
LAYER_DATABASE = "channel_layer"


class ChannelLayerRouter:
    """channels-lite's models read, write and migrate only in the ``channel_layer`` database; nothing else goes there."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return LAYER_DATABASE if model._meta.app_label == LAYER_APP else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return LAYER_DATABASE if model._meta.app_label == LAYER_APP else None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        if app_label == LAYER_APP:
            return db == LAYER_DATABASE
        return db != LAYER_DATABASE

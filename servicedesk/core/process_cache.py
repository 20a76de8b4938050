"""Configuration read once per process and dropped when it changes.

Intake reads the same few rows for every contact: queues, topics, SLA
policies and their calendars, how a queue routes. ``ProcessCached`` keeps
such a value in the process, so a contact costs no statement for it.

When it is dropped:

* a save or delete of one of the value's models (Django's ``post_save``,
  ``post_delete`` and ``m2m_changed`` signals) drops it in this process at
  once and changes a generation token in the shared cache (Redis; a file in
  the zero-setup default);
* every other process compares its token with the shared one at most once
  every ``CHECK_SECONDS`` and reloads when they differ, so a change made in the
  admin reaches every web and worker process within that time;
* a value older than ``MAX_AGE_SECONDS`` is reloaded whatever the token says
  (a change made while the shared cache was unreachable, or by a bulk
  ``update()``, which sends no signal);
* with the shared cache unreachable, the value is read afresh each time:
  slower, never stale.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from django.core.cache import cache
from django.db import models, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

log = logging.getLogger(__name__)

T = TypeVar("T")

CHECK_SECONDS = 1.0
MAX_AGE_SECONDS = 60.0
_KEY_PREFIX = "process-cache:"

_registry: list[ProcessCached[Any]] = []


class ProcessCached(Generic[T]):
    """A value built by ``loader`` and kept in this process until one of ``models`` changes."""

    def __init__(self, name: str, loader: Callable[[], T], *, depends_on: Iterable[type[models.Model]]) -> None:
        self.name = name
        self.loader = loader
        self._key = _KEY_PREFIX + name
        self._lock = threading.Lock()
        self._value: T | None = None
        self._loaded = False
        self._token: str | None = None
        self._loaded_at = 0.0
        self._checked_at = 0.0
        for model in depends_on:
            post_save.connect(self._changed, sender=model, weak=False, dispatch_uid=f"{self._key}:{model._meta.label}")
            post_delete.connect(
                self._changed, sender=model, weak=False, dispatch_uid=f"{self._key}:{model._meta.label}:d"
            )
            for field in model._meta.local_many_to_many:
                through = field.remote_field.through
                assert through is not None
                m2m_changed.connect(
                    self._changed, sender=through, weak=False, dispatch_uid=f"{self._key}:{through._meta.label}"
                )
        _registry.append(self)

    def get(self) -> T:
        now = time.monotonic()
        with self._lock:
            if self._loaded and now - self._loaded_at < MAX_AGE_SECONDS:
                if now - self._checked_at < CHECK_SECONDS:
                    return self._value  # type: ignore[return-value]
                token = _shared_token(self._key)
                self._checked_at = now
                if token is not None and token == self._token:
                    return self._value  # type: ignore[return-value]
            else:
                token = _shared_token(self._key)
        value = self.loader()
        with self._lock:
            self._value, self._loaded = value, token is not None
            self._token, self._loaded_at, self._checked_at = token, now, now
        return value

    def current(self) -> T | None:
        """The value without reading anything: None when ``get`` would have to check or load first.

        For code on an event loop, which then runs ``get`` on a thread.
        """
        now = time.monotonic()
        with self._lock:
            if self._loaded and now - self._loaded_at < MAX_AGE_SECONDS and now - self._checked_at < CHECK_SECONDS:
                return self._value
        return None

    def clear(self) -> None:
        """Drop the value in this process only (tests, whose database rolls back under it)."""
        with self._lock:
            self._value, self._loaded, self._token = None, False, None

    def _changed(self, **kwargs: Any) -> None:
        # Dropped now for this process, and again with a new token once the
        # change is committed: a process that reloads in between reads the
        # old rows, and the new token makes it read again.
        self.clear()
        transaction.on_commit(self._renew, robust=True)

    def _renew(self) -> None:
        self.clear()
        try:
            cache.set(self._key, uuid.uuid4().hex, None)
        except Exception:
            # Other processes reload within MAX_AGE_SECONDS.
            log.warning("Process cache %s: the shared cache is unreachable", self.name, exc_info=True)


def _shared_token(key: str) -> str | None:
    """The shared generation token, created when missing; None when the shared cache is unreachable."""
    try:
        token = cache.get(key)
        if token is None:
            token = uuid.uuid4().hex
            if not cache.add(key, token, None):
                token = cache.get(key)
        return str(token) if token is not None else None
    except Exception:
        log.warning("Process cache: the shared cache is unreachable; reading configuration afresh", exc_info=True)
        return None


def process_caches_clear() -> None:
    """Drop every process-cached value in this process."""
    for entry in _registry:
        entry.clear()

"""Queues and topics as intake reads them: once per process (``core/process_cache.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from servicedesk.core.process_cache import ProcessCached
from servicedesk.tickets.models import Queue, Topic


@dataclass(frozen=True)
class _Catalogue:
    queues: dict[str, Queue]
    topics: dict[str, Topic]
    first_queue: Queue | None


def _load() -> _Catalogue:
    queues = {queue.slug: queue for queue in Queue.objects.order_by("pk")}
    by_pk = {queue.pk: queue for queue in queues.values()}
    topics = {}
    for topic in Topic.objects.order_by("pk"):
        # The topic's queue is the cached one: no query when intake follows it.
        topic.queue = by_pk.get(topic.queue_id) if topic.queue_id else None
        topics[topic.slug] = topic
    return _Catalogue(queues=queues, topics=topics, first_queue=next(iter(queues.values()), None))


_catalogue = ProcessCached("tickets.catalogue", _load, depends_on=[Queue, Topic])


def queue_by_slug(slug: str) -> Queue | None:
    return _catalogue.get().queues.get(slug)


def topic_by_slug(slug: str) -> Topic | None:
    return _catalogue.get().topics.get(slug)


def queue_default_cached() -> Queue | None:
    """The configured default queue, else the oldest; None when there is no queue yet."""
    catalogue = _catalogue.get()
    return catalogue.queues.get(settings.SERVICEDESK["DEFAULT_QUEUE"]) or catalogue.first_queue

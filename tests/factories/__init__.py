"""factory_boy factories for the domain. Objects that have a service are built
through it where the service adds events (tickets use ``ticket_create``)."""

from __future__ import annotations

import factory
from django.contrib.auth.models import Group
from django.utils import timezone

from servicedesk.accounts.models import User
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Customer, Identity, Organization, Queue, Topic


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@corp.example")
    display_name = factory.LazyAttribute(lambda o: o.username.title())

    @factory.post_generation
    def password(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        self.set_password(extracted or "pass-word-123")
        if create:
            self.save(update_fields=["password"])


class AgentFactory(UserFactory):
    """An agent in the given queues (``queues=[...]``), role ``agent`` by default."""

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        if create:
            self.groups.add(Group.objects.get_or_create(name=extracted or "agent")[0])

    @factory.post_generation
    def queues(self, create: bool, extracted: list[Queue] | None, **kwargs: object) -> None:
        if create and extracted:
            for queue in extracted:
                queue.members.add(self)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"queue{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class TopicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Topic
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"topic{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Customer {n}")
    created_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def email(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        if create:
            value = extracted or f"customer{self.pk}@example.com"
            Identity.objects.create(customer=self, kind="email", value=value.lower())


def ticket_make(
    *,
    customer: Customer | None = None,
    queue: Queue | None = None,
    subject: str = "Help",
    channel: str = "web",
    **kwargs,
):  # type: ignore[no-untyped-def]
    """A ticket built through ``ticket_create`` so it has its ``created`` event."""
    from servicedesk.tickets.services.tickets import ticket_create

    return ticket_create(
        customer=customer or CustomerFactory(),
        subject=subject,
        channel=channel,
        queue=queue or QueueFactory(slug="support"),
        actor=kwargs.pop("actor", Actor.system()),
        **kwargs,
    )

import pytest

from channels_app.forum.models import Category, Visibility
from channels_app.forum.services import member_ensure
from tests.factories import CustomerFactory, OrganizationFactory


@pytest.fixture
def public(db):
    return Category.objects.create(slug="questions", name="Questions", name_zh_hans="问题", position=1)


@pytest.fixture
def members_only(db):
    return Category.objects.create(slug="members", name="Members", visibility=Visibility.SIGNED_IN, position=2)


@pytest.fixture
def acme(db):
    return OrganizationFactory(name="Acme")


@pytest.fixture
def acme_only(db, acme):
    return Category.objects.create(
        slug="acme", name="Acme private", visibility=Visibility.ORGANIZATION, organization=acme, position=3
    )


@pytest.fixture
def alice(db, acme):
    customer = CustomerFactory(name="Alice Byrne", email="alice@example.com")
    customer.organization = acme
    customer.save()
    return member_ensure(customer=customer)


@pytest.fixture
def bob(db):
    return member_ensure(customer=CustomerFactory(name="Bob Stone", email="bob@example.com"))


@pytest.fixture
def staff(db, agent):
    return member_ensure(user=agent)

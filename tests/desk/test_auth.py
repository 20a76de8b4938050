import pytest
from django.urls import reverse

from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_login_page_renders_the_form(client):
    response = client.get(reverse("desk:login"))

    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="username"' in content
    assert 'name="password"' in content
    assert 'name="signin"' in content


def test_agent_signs_in_and_lands_in_the_inbox(client, agent):
    response = client.post(reverse("desk:login"), {"username": "ann", "password": "pass-word-123"})

    assert response.status_code == 302
    assert response["Location"] == "/desk/"
    inbox = client.get(response["Location"])
    assert inbox.status_code == 200
    assert "Signed in as Ann" in inbox.content.decode()


def test_wrong_password_shows_an_error(client, agent):
    response = client.post(reverse("desk:login"), {"username": "ann", "password": "nope"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_customer_user_cannot_sign_in_to_the_desk(client):
    user = UserFactory(username="carla")
    CustomerFactory(name="Carla", user=user)

    response = client.post(reverse("desk:login"), {"username": "carla", "password": "pass-word-123"})

    assert response.status_code == 200
    assert "This sign-in is for service desk agents only." in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "url",
    ["/desk/", "/desk/tickets/SD-1001/", "/desk/customers/1/", "/desk/attachments/abc/"],
)
def test_anonymous_visitor_is_sent_to_sign_in(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/desk/login/?next={url}"


@pytest.mark.parametrize("url", ["/desk/", "/desk/tickets/SD-1001/", "/desk/customers/1/"])
def test_signed_in_customer_gets_not_found(client, url):
    user = UserFactory(username="carla")
    CustomerFactory(name="Carla", user=user)
    client.force_login(user)

    assert client.get(url).status_code == 404


def test_sign_out_is_a_post_and_returns_to_sign_in(agent_client):
    response = agent_client.post(reverse("desk:logout"))

    assert response.status_code == 302
    assert response["Location"] == "/desk/login/"
    assert "_auth_user_id" not in agent_client.session
    assert agent_client.get("/desk/").status_code == 302


def test_navigation_shows_inbox_api_docs_name_and_sign_out(agent_client):
    content = agent_client.get("/desk/").content.decode()

    assert '<a href="/desk/">Inbox</a>' in content
    assert '<a href="/api/docs/">API docs</a>' in content
    assert 'action="/desk/logout/" method="post"' in content
    assert "/desk/reports/" not in content

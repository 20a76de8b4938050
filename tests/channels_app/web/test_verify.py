"""A signed-in customer adds an email address or a phone number by proving it; an address another record
holds becomes a merge suggested to agents, never a merge (docs/help-centre.md, "Your addresses")."""

from __future__ import annotations

import base64
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

import pytest
from django.core import mail
from django.core.cache import cache

from servicedesk.core import sms
from servicedesk.tickets.models import Identity, MergeSuggestion
from tests.channels_app.web.helpers import sign_in
from tests.factories import AgentFactory, CustomerFactory, ticket_make

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://\S+/help/account/verify/(\S+)/")


@pytest.fixture(autouse=True)
def _clean():
    cache.clear()
    sms.outbox.clear()


@pytest.fixture
def alice(db):
    return CustomerFactory(name="Alice Byrne", email="alice@example.com")


def add(client, capture, **data):  # type: ignore[no-untyped-def]
    with capture(execute=True):
        return client.post("/help/account/", data)


def test_an_email_address_is_added_once_its_link_is_pressed(client, alice, django_capture_on_commit_callbacks):
    sign_in(client, alice)
    mail.outbox.clear()
    assert add(client, django_capture_on_commit_callbacks, email="Alice.Work@Example.com").status_code == 302
    assert [m.to for m in mail.outbox] == [["alice.work@example.com"]]
    url = f"/help/account/verify/{LINK.search(mail.outbox[0].body).group(1)}/"
    assert client.get(url).status_code == 200  # opening it adds nothing
    assert not Identity.objects.filter(value="alice.work@example.com").exists()
    assert client.post(url).status_code == 200
    assert Identity.objects.get(value="alice.work@example.com").customer_id == alice.pk
    assert client.post(url).status_code == 400  # used
    page = client.get("/help/account/").content.decode()
    assert "alice.work@example.com" in page


def test_an_address_another_record_holds_is_suggested_to_agents_not_merged(
    client, alice, queue, django_capture_on_commit_callbacks
):
    other = CustomerFactory(name="A. Byrne", email="shared@example.com")
    ticket_make(customer=alice, queue=queue)
    ticket_make(customer=other, queue=queue)
    sign_in(client, alice)
    mail.outbox.clear()
    add(client, django_capture_on_commit_callbacks, email="shared@example.com")
    client.post(f"/help/account/verify/{LINK.search(mail.outbox[-1].body).group(1)}/")
    assert Identity.objects.get(value="shared@example.com").customer_id == other.pk
    assert other.merged_into_id is None and MergeSuggestion.objects.get().other_id == other.pk
    agent = AgentFactory(queues=[queue])
    client.force_login(agent)
    page = client.get(f"/desk/customers/{other.pk}/").content.decode()
    assert f'data-customer="{alice.pk}"' in page and "proved an address the other holds" in page


def test_a_phone_number_is_added_with_the_code_sent_to_it(client, alice):
    sign_in(client, alice)
    response = client.post("/help/account/", {"phone": "086 123 4567"})
    assert response.status_code == 302
    (message,) = sms.outbox
    assert message.to == "+353861234567"
    code = re.search(r"\d{6}", message.body).group(0)
    check = response["Location"].split("check=")[1]
    wrong = "000000" if code != "000000" else "111111"
    assert client.post(f"/help/account/?check={check}", {"check": check, "code": wrong}).status_code == 400
    assert client.post(f"/help/account/?check={check}", {"check": check, "code": code}).status_code == 302
    assert Identity.objects.filter(customer=alice, kind="phone", value="+353861234567").exists()


def test_five_wrong_codes_spend_it(client, alice):
    sign_in(client, alice)
    response = client.post("/help/account/", {"phone": "+353861234567"})
    check = response["Location"].split("check=")[1]
    code = re.search(r"\d{6}", sms.outbox[0].body).group(0)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        client.post("/help/account/", {"check": check, "code": wrong})
    assert client.post("/help/account/", {"check": check, "code": code}).status_code == 400
    assert not Identity.objects.filter(kind="phone").exists()


@pytest.mark.parametrize(
    "data, field",
    [({"email": "not an address"}, "email"), ({"email": "alice@example.com"}, "email"), ({"phone": "hello"}, "phone")],
)
def test_bad_input_is_400_with_the_field(client, alice, data, field):
    sign_in(client, alice)
    response = client.post("/help/account/", data)
    assert response.status_code == 400
    form = response.context["email_form" if field == "email" else "phone_form"]
    assert form.errors


def test_too_many_checks_in_an_hour_are_refused_and_strangers_are_sent_to_sign_in(client, alice):
    assert client.get("/help/account/")["Location"] == "/help/sign-in/"
    sign_in(client, alice)
    answers = [client.post("/help/account/", {"phone": f"+3538612345{n:02d}"}).status_code for n in range(7)]
    assert answers[:5] == [302] * 5 and answers[-1] == 400


def test_the_twilio_backend_posts_the_message_with_the_accounts_credentials(settings):
    seen: dict = {}

    class Twilio(BaseHTTPRequestHandler):
        def do_POST(self):
            seen["path"] = self.path
            seen["auth"] = self.headers["Authorization"]
            seen["form"] = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            self.send_response(201)
            self.end_headers()
            self.wfile.write(b'{"sid": "SM1"}')

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

    server = HTTPServer(("127.0.0.1", 0), Twilio)
    threading.Thread(target=server.handle_request, daemon=True).start()
    settings.SERVICEDESK = {
        **settings.SERVICEDESK,
        "SMS_BACKEND": "twilio",
        "SMS_FROM": "+35315550000",
        "TWILIO_ACCOUNT_SID": "AC123",
        "TWILIO_AUTH_TOKEN": "secret",
        "TWILIO_API_URL": f"http://127.0.0.1:{server.server_port}",
    }
    sms.sms_send(to="+353861234567", body="Your code: 123456")
    server.server_close()
    assert seen["path"] == "/Accounts/AC123/Messages.json"
    assert base64.b64decode(seen["auth"].split()[1]) == b"AC123:secret"
    assert seen["form"] == {"To": ["+353861234567"], "From": ["+35315550000"], "Body": ["Your code: 123456"]}

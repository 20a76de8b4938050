"""Images and files on posts: checked as every upload, shown with the post, served only to who reads it."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from channels_app.forum.models import ForumAttachment, Post, State, Topic
from channels_app.forum.services import post_create
from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.inbound import InboundAttachment
from tests.channels_app.forum.helpers import topic_make
from tests.channels_app.web.helpers import PDF_BYTES, PNG_BYTES, pdf, png, sign_in

pytestmark = pytest.mark.django_db


def served(client, attachment: ForumAttachment) -> int:  # type: ignore[no-untyped-def]
    return client.get(f"/community/attachments/{attachment.key}/").status_code


def test_a_reply_with_an_image_and_a_pdf_shows_the_image_and_offers_the_pdf(client, public, alice, bob):
    topic = topic_make(alice, public, title="Scanner jams")
    sign_in(client, bob.customer)
    response = client.post(
        f"/community/t/{topic.pk}/reply/", {"body": "See the screen:", "attachments": [png("screen.png"), pdf()]}
    )
    assert response.status_code == 302
    post = Post.objects.get(topic=topic, position=2)
    image, document = ForumAttachment.objects.filter(post=post).order_by("pk")
    assert (image.filename, image.content_type, image.size) == ("screen.png", "image/png", len(PNG_BYTES))
    assert (document.filename, document.content_type) == ("invoice.pdf", "application/pdf")
    page = client.get(f"/community/t/{topic.pk}-{topic.slug}/").content.decode()
    assert f'<img src="/community/attachments/{image.key}/" alt="screen.png"' in page
    assert f'href="/community/attachments/{document.key}/">invoice.pdf</a>' in page
    shown = client.get(f"/community/attachments/{image.key}/")
    assert shown.status_code == 200 and b"".join(shown.streaming_content) == PNG_BYTES
    assert shown["Content-Type"] == "image/png" and shown["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in shown["Content-Security-Policy"]
    downloaded = client.get(f"/community/attachments/{document.key}/")
    assert downloaded["Content-Disposition"].startswith("attachment;")
    assert b"".join(downloaded.streaming_content) == PDF_BYTES


def test_a_file_the_limits_refuse_is_named_and_nothing_is_written(client, public, alice, bob):
    topic = topic_make(alice, public, title="Scanner jams")
    sign_in(client, bob.customer)
    before = (Post.objects.count(), ForumAttachment.objects.count(), sorted(_stored()))
    program = SimpleUploadedFile("setup.exe", b"MZ\x90\x00" + b"\x00" * 60, content_type="application/octet-stream")
    response = client.post(f"/community/t/{topic.pk}/reply/", {"body": "Run this", "attachments": [png(), program]})
    assert response.status_code == 400
    assert "setup.exe" in response.content.decode()
    assert (Post.objects.count(), ForumAttachment.objects.count(), sorted(_stored())) == before


def _stored() -> list[str]:
    try:
        _folders, files = default_storage.listdir("forum")
    except FileNotFoundError:
        return []
    return files


def test_a_file_is_served_exactly_to_who_may_read_its_post(client, public, acme_only, alice, bob, agent):
    private = topic_make(alice, acme_only, title="Acme's scanner")
    upload = InboundAttachment("acme.png", "image/png", PNG_BYTES)
    post = post_create(member=alice, topic=private, body="Our scanner:", files=[upload])
    private_file = ForumAttachment.objects.get(post=post)
    public_topic = topic_make(alice, public, title="Public scanner")
    hidden_post = post_create(member=alice, topic=public_topic, body="Mine:", files=[upload])
    Post.objects.filter(pk=hidden_post.pk).update(state=State.HIDDEN)
    hidden_file = ForumAttachment.objects.get(post=hidden_post)

    assert served(client, private_file) == 404 and served(client, hidden_file) == 404  # a visitor
    sign_in(client, bob.customer)  # another customer
    assert served(client, private_file) == 404 and served(client, hidden_file) == 404
    sign_in(client, alice.customer)  # the author, of Acme
    assert served(client, private_file) == 200 and served(client, hidden_file) == 200
    client.cookies.clear()
    client.force_login(agent)
    assert served(client, private_file) == 200 and served(client, hidden_file) == 200
    Topic.objects.filter(pk=private.pk).update(state=State.HIDDEN)
    client.logout()
    sign_in(client, bob.customer)
    assert served(client, private_file) == 404
    assert client.get("/community/attachments/no-such-key/").status_code == 404


def test_a_post_may_show_its_own_image_in_its_text_and_no_other_sites(public, alice):
    topic = topic_make(alice, public, title="Images")
    first = post_create(member=alice, topic=topic, body="x", files=[InboundAttachment("a.png", "image/png", PNG_BYTES)])
    key = ForumAttachment.objects.get(post=first).key
    post = post_create(
        member=alice,
        topic=topic,
        body=f"![mine](/community/attachments/{key}/) and ![theirs](https://evil.example/pixel.png)",
    )
    assert f'src="/community/attachments/{key}/"' in post.body_html
    assert "evil.example" not in post.body_html


def test_the_service_refuses_too_many_files_before_writing(public, alice, settings):
    topic = topic_make(alice, public, title="Many files")
    uploads = [InboundAttachment(f"{n}.png", "image/png", PNG_BYTES) for n in range(6)]
    with pytest.raises(ApplicationError) as refused:
        post_create(member=alice, topic=topic, body="All of them", files=uploads)
    assert refused.value.field == "attachments"
    assert not Post.objects.filter(topic=topic, position=2).exists() and not ForumAttachment.objects.exists()

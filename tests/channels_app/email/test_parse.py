"""The email parser against hand-written raw messages in fixtures/."""
# ruff: noqa: RUF001  (the expected values are real Chinese, German and Thai text with their own punctuation)

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels_app.email.parse import ParsedEmail, parse_email
from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, SenderIdentity

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _own_addresses(settings):
    settings.SERVICEDESK = {
        **settings.SERVICEDESK,
        "SUPPORT_ADDRESS": "support@servicedesk.example",
        "REFERENCE_PREFIX": "SD",
    }
    settings.DEFAULT_FROM_EMAIL = "Service desk <desk@servicedesk.example>"
    settings.SERVICEDESK_EMAIL = {"OWN_ADDRESSES": ["Help@ServiceDesk.example"]}


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parsed(name: str) -> InboundMessage:
    result = parse_email(load(name))
    assert result.quarantine_reason is None
    assert result.inbound is not None
    return result.inbound


def quarantined(raw: bytes) -> str | None:
    result = parse_email(raw)
    assert result.inbound is None
    return result.quarantine_reason


def test_plain_ascii_full_value():
    when = datetime(2024, 5, 6, 7, 15, tzinfo=UTC)
    result = parse_email(load("plain_ascii.eml"), received_at=when)
    assert result == ParsedEmail(
        inbound=InboundMessage(
            channel="email",
            external_id="CAF0001@mail.example.com",
            sender=SenderIdentity("email", "alice@example.com", "Alice Example"),
            subject="Printer on floor 3 is jammed",
            text="Hello,\n\nthe printer on floor 3 is jammed again.\n\nThanks,\nAlice",
            display_text="Hello,\n\nthe printer on floor 3 is jammed again.\n\nThanks,\nAlice",
            html="",
            attachments=(),
            ticket_reference=None,
            reference_trusted=False,
            thread_keys=(),
            received_at=when,
            rfc_message_id="<CAF0001@mail.example.com>",
            recipients=("support@servicedesk.example", "bob@example.com", "carol@example.org"),
            is_automatic=False,
            metadata={},
        ),
        quarantine_reason=None,
        display_text="Hello,\n\nthe printer on floor 3 is jammed again.\n\nThanks,\nAlice",
    )


def test_utf8_quoted_printable():
    inbound = parsed("utf8_qp.eml")
    assert inbound.sender == SenderIdentity("email", "juergen@example.de", "Jürgen Müller")
    assert inbound.subject == "Gerät defekt"
    assert inbound.text == "Grüße aus Köln – das Gerät zeigt „Fehler 42“.\nDanke!"


def test_gb2312_label_with_gbk_only_characters_decodes_as_gb18030():
    inbound = parsed("gb2312_gbk_chars.eml")
    assert inbound.sender == SenderIdentity("email", "wang@example.cn", "王镕")
    assert inbound.subject == "订单问题（镕）"
    assert inbound.text == "朱镕基先生和陶喆的订单还没有到。"


def test_big5_label_with_hkscs_characters():
    inbound = parsed("big5_hkscs.eml")
    assert inbound.subject == "嘅貨"
    assert inbound.text == "我哋嘅貨仲未到，佢話咗聽日送。"


def test_windows_874_thai():
    inbound = parsed("windows874_thai.eml")
    assert inbound.subject == "สินค้า"
    assert inbound.text == "สวัสดีครับ สินค้ายังไม่มาถึง"


def test_iso_8859_8_i_hebrew():
    inbound = parsed("iso8859_8_i_hebrew.eml")
    assert inbound.subject == "הזמנה"
    assert inbound.text == "שלום, ההזמנה שלי לא הגיעה."


def test_x_unknown_label_with_utf8_bytes_is_detected():
    inbound = parsed("x_unknown_utf8.eml")
    assert inbound.sender == SenderIdentity("email", "zoe@example.fr", "Zoë")
    assert inbound.subject == "Café crème"
    assert inbound.text == "Le café crème était froid."


def test_raw_latin1_header_bytes():
    inbound = parsed("latin1_raw_header.eml")
    assert inbound.sender == SenderIdentity("email", "rene@example.ch", "René Müller")
    assert inbound.subject == "Brücke gesperrt, schöne Grüße"
    assert inbound.text == "Die Brücke ist gesperrt."


def test_utf8_headers_of_internationalised_mail():
    """RFC 6532: the address, the Message-ID and the text of the headers in raw UTF-8."""
    inbound = parsed("utf8_headers_eai.eml")
    assert inbound.sender == SenderIdentity("email", "josé@bücher.example", "José Núñez")
    assert inbound.subject == "Pedido sin entregar"
    assert (inbound.rfc_message_id, inbound.external_id) == ("<pedido-1@bücher.example>", "pedido-1@bücher.example")
    assert inbound.text == "Mi pedido no ha llegado. ¿Pueden ayudarme?"


def test_utf8_in_message_ids_of_threading_headers_is_read_as_text():
    raw = (
        "From: ana@example.com\r\nTo: support@servicedesk.example\r\nSubject: Re: Pedido\r\n"
        "Message-ID: <r2@example.com>\r\nIn-Reply-To: <pedido-1@bücher.example>\r\n"
        "References: <raíz@bücher.example> <pedido-1@bücher.example>\r\n\r\nGracias\r\n"
    ).encode()
    result = parse_email(raw)
    assert result.inbound is not None
    assert result.inbound.thread_keys == ("<pedido-1@bücher.example>", "<raíz@bücher.example>")


@pytest.mark.parametrize(
    ("from_header", "address"),
    [
        # A mailbox name as one RFC 2047 word, as some programs write a non-ASCII name.
        (b"=?utf-8?q?Jos=C3=A9?= <=?utf-8?q?Jos=C3=A9?=@xn--bcher-kva.example>", "josé@xn--bcher-kva.example"),
        (b"<=?UTF-8?B?Sm9zw6k=?=@example.com>", "josé@example.com"),
        # A word that decodes to what no mailbox name can hold stays as written; intake judges it.
        (b"<=?utf-8?q?a_b?=@example.com>", "=?utf-8?q?a_b?=@example.com"),
    ],
)
def test_encoded_word_mailbox_names_are_decoded(from_header: bytes, address: str):
    raw = b"From: " + from_header + b"\r\nTo: support@servicedesk.example\r\nSubject: Hola\r\n\r\nHola\r\n"
    result = parse_email(raw)
    assert result.inbound is not None
    assert result.inbound.sender.value == address


def test_encoded_crlf_in_subject_becomes_one_line():
    inbound = parsed("rfc2047_crlf_subject.eml")
    assert inbound.subject == "Hello Bcc: x@evil.example"
    assert inbound.recipients == ("support@servicedesk.example",)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (b"=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
        (b"=?no-such-charset?q?caf=C3=A9?=", "café"),
        (b"=?utf-8?b?Q2Fmw6k?=", "Café"),
        (b"=?utf-8?b?Q2Fm w6k=?=", "Café"),
        (b"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
        (b"=?utf-8?q?line_one=0Aline_two?=\r\n =?utf-8?b?IOKckw==?=", "line one line two ✓"),
        (b"=?gb2312?b?1uzpRrv5?=", "朱镕基"),
    ],
)
def test_encoded_word_variants_never_fail(subject, expected):
    raw = b"From: a@example.com\r\nSubject: " + subject + b"\r\n\r\nbody\r\n"
    assert parse_email(raw).inbound.subject == expected


def test_rfc2231_filename():
    inbound = parsed("rfc2231_filename.eml")
    assert inbound.text == "See attached."
    assert inbound.attachments == (InboundAttachment("請求書 2024.pdf", "application/pdf", b"%PDF-1.4\n", ""),)


def test_nul_bytes_removed_everywhere():
    inbound = parsed("nul_bytes.eml")
    assert inbound.sender == SenderIdentity("email", "nul@example.com", "Null")
    assert inbound.subject == "Zero byte"
    assert inbound.text == "Lineone\nLine two"


def test_nul_bytes_removed_from_html():
    raw = b"From: a@example.com\r\nContent-Type: text/html\r\n\r\n<p>a\x00b</p>\r\n"
    inbound = parse_email(raw).inbound
    assert (inbound.html, inbound.text) == ("<p>ab</p>\n", "ab")


def test_html_only_gets_text_rendering():
    inbound = parsed("html_only.eml")
    assert inbound.text == "Hello team,\n\nOrder & invoice!\n\none\ntwo\n\nline\nbreak"
    assert inbound.html.startswith("<html><head><title>T</title>")
    assert '<img src="https://tracker.example/p.gif">' in inbound.html
    assert inbound.attachments == ()


def test_multipart_alternative_picks_plain_for_text_and_html_for_html():
    inbound = parsed("alternative.eml")
    assert inbound.text == "Plain version"
    assert inbound.html == "<p>HTML <b>version</b></p>"
    assert inbound.attachments == ()


def test_inline_cid_image_keeps_content_id():
    inbound = parsed("inline_cid_image.eml")
    assert inbound.html == '<p>See <img src="cid:shot1@example.com"></p>'
    assert inbound.text == "See"
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")
    assert inbound.attachments == (InboundAttachment("shot.png", "image/png", png, "shot1@example.com"),)


def test_attachment_name_loses_path_and_bidi_controls():
    inbound = parsed("attachment_path_bidi.eml")
    assert inbound.attachments == (InboundAttachment("cvfdp.exe", "application/octet-stream", b"MZ\x90\x00", ""),)


def test_forwarded_message_is_an_attachment_and_never_a_thread_key():
    inbound = parsed("forwarded_rfc822.eml")
    assert inbound.text == "Forwarding the shop's mail."
    assert inbound.thread_keys == ("<earlier@example.com>",)
    [attachment] = inbound.attachments
    assert (attachment.filename, attachment.content_type) == ("Your order.eml", "message/rfc822")
    assert attachment.content == (
        b"From: Shop <orders@shop.example>\nTo: alice@example.com\nSubject: Your order\n"
        b"Message-ID: <inner-forwarded@shop.example>\nIn-Reply-To: <inner-parent@shop.example>\n"
        b"References: <inner-root@shop.example>\n\nYour order shipped."
    )


def test_forwarded_message_without_subject_gets_default_name():
    raw = (
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
        b"Content-Type: message/rfc822\r\n\r\nFrom: b@example.com\r\n\r\nhi\r\n--x--\r\n"
    )
    [attachment] = parse_email(raw).inbound.attachments
    assert (attachment.filename, attachment.content) == ("forwarded message.eml", b"From: b@example.com\n\nhi")


def test_smime_signed_shows_body_and_keeps_signature():
    inbound = parsed("smime_signed.eml")
    assert inbound.text == "Signed body text."
    [signature] = inbound.attachments
    assert (signature.filename, signature.content_type) == ("smime.p7s", "application/pkcs7-signature")
    assert signature.content == bytes.fromhex("308006092a864886f70d010702a0803080020101") + b"1"


def test_pgp_mime_shows_body_and_keeps_signature():
    inbound = parsed("pgp_mime.eml")
    assert inbound.text == "PGP body."
    assert inbound.attachments == (
        InboundAttachment(
            "signature.asc",
            "application/pgp-signature",
            b"-----BEGIN PGP SIGNATURE-----\r\niQEzBAEBCAAdFiEE\r\n-----END PGP SIGNATURE-----",
            "",
        ),
    )


BASE = b"From: Kim <kim@example.com>\r\nTo: support@servicedesk.example\r\nSubject: Hi\r\n"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (b"Auto-Submitted: auto-generated\r\n", "auto-submitted"),
        (b"Auto-Submitted: AUTO-NOTIFIED; owner-email=x@example.com\r\n", "auto-submitted"),
        (b"Precedence: bulk\r\n", "precedence"),
        (b"Precedence: Junk\r\n", "precedence"),
        (b"Precedence: list\r\n", "precedence"),
        (b"X-Auto-Response-Suppress: DR, RN\r\n", "x-auto-response-suppress"),
        (b"X-Auto-Response-Suppress: oof\r\n", "x-auto-response-suppress"),
        (b"X-Auto-Response-Suppress: AutoReply\r\n", "x-auto-response-suppress"),
        (b"List-Id: <news.example.com>\r\n", "list-id"),
        (b"List-Unsubscribe: <mailto:u@example.com>\r\n", "list-unsubscribe"),
        (b"Return-Path: <>\r\n", "return-path"),
        (b"X-ServiceDesk-Ticket: SD-1042\r\n", "loop-header"),
    ],
)
def test_automatic_mail_by_header(headers, reason):
    inbound = parse_email(BASE + headers + b"\r\nbody\r\n").inbound
    assert (inbound.is_automatic, inbound.metadata) == (True, {"auto_reason": reason})


@pytest.mark.parametrize(
    "headers",
    [
        b"Auto-Submitted: no\r\n",
        b"Auto-Submitted: No (human)\r\n",
        b"Precedence: first-class\r\n",
        b"X-Auto-Response-Suppress: RN, NRN\r\n",
        b"",
    ],
)
def test_not_automatic(headers):
    inbound = parse_email(BASE + headers + b"\r\nbody\r\n").inbound
    assert (inbound.is_automatic, inbound.metadata) == (False, {})


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        (b"MAILER-DAEMON@mx.example.com", "robot-sender"),
        (b"postmaster@example.com", "robot-sender"),
        (b"no-reply@example.com", "robot-sender"),
        (b"NoReply@example.com", "robot-sender"),
        (b"do-not-reply@example.com", "robot-sender"),
        (b"donotreply@example.com", "robot-sender"),
        (b"bounce@example.com", "robot-sender"),
        (b"bounces+123-abc@lists.example.com", "robot-sender"),
        (b"support@servicedesk.example", "own-address"),
        (b"support+abc123@servicedesk.example", "own-address"),
        (b"desk@servicedesk.example", "own-address"),
        (b"help@servicedesk.example", "own-address"),
    ],
)
def test_automatic_mail_by_sender(sender, reason):
    inbound = parse_email(b"From: <" + sender + b">\r\nSubject: x\r\n\r\nbody\r\n").inbound
    assert (inbound.is_automatic, inbound.metadata) == (True, {"auto_reason": reason})


def test_list_mail_fixture():
    inbound = parsed("list_mail.eml")
    assert (inbound.is_automatic, inbound.metadata) == (True, {"auto_reason": "precedence"})


def test_out_of_office_reply():
    inbound = parsed("out_of_office.eml")
    assert inbound.is_automatic is True
    assert inbound.metadata == {"auto_reason": "auto-submitted", "out_of_office": "1"}
    # The fixture's <sd.17...> carries no valid signature of ours: it is dropped.
    assert inbound.thread_keys == ()
    assert inbound.ticket_reference == "SD-1042"


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Autoreply: yes\r\n",
        b"X-Autorespond: vacation\r\n",
        b"Subject: Out of Office: away\r\n",
        b"Subject: =?utf-8?b?6Ieq5Yqo5Zue5aSNOiDkvJHlgYc=?=\r\n",
    ],
)
def test_out_of_office_signals(headers):
    inbound = parse_email(b"From: kim@example.com\r\n" + headers + b"\r\nbody\r\n").inbound
    assert (inbound.is_automatic, inbound.metadata) == (True, {"out_of_office": "1", "auto_reason": "out-of-office"})


def test_delivery_status_notification():
    inbound = parsed("dsn_bounce.eml")
    assert inbound.is_automatic is True
    assert inbound.metadata == {
        "auto_reason": "delivery-status",
        "dsn_for": "<sd.42.00112233aabbccdd@servicedesk.example>",
        "dsn_recipient": "gone@example.com",
    }
    assert inbound.thread_keys == ()
    assert inbound.text == "I'm sorry to have to inform you that your message could not be delivered."
    assert [(a.filename, a.content_type) for a in inbound.attachments] == [
        ("delivery-status.txt", "message/delivery-status"),
        ("returned headers.txt", "text/rfc822-headers"),
    ]


@pytest.mark.parametrize(
    "name",
    [
        "bounce_postfix_plain.eml",
        "bounce_exim.eml",
        "bounce_qmail.eml",
        "bounce_gmail.eml",
        "bounce_exchange.eml",
    ],
)
def test_plain_text_bounces_of_common_mail_systems_are_recognised(name):
    inbound = parsed(name)
    assert inbound.is_automatic is True
    assert inbound.metadata == {
        "auto_reason": "delivery-status",
        "dsn_for": "<sd.42.00112233aabbccdd@servicedesk.example>",
        "dsn_recipient": "gone@example.com",
    }
    assert inbound.thread_keys == ()


def test_delayed_delivery_report_names_no_failed_recipient():
    raw = load("dsn_bounce.eml").replace(b"Action: failed", b"Action: delayed")
    assert parse_email(raw).inbound.metadata == {
        "auto_reason": "delivery-status",
        "dsn_for": "<sd.42.00112233aabbccdd@servicedesk.example>",
    }


def test_customer_mail_that_mentions_a_bounce_is_not_one():
    raw = (
        b"From: Alice <alice@example.com>\r\nTo: support@servicedesk.example\r\n"
        b"Subject: Undeliverable: my invoice\r\nMessage-ID: <a1@example.com>\r\n\r\n"
        b"This is the mail system at host mine, it says your message to bob@example.com couldn't be delivered.\r\n"
    )
    inbound = parse_email(raw).inbound
    assert (inbound.is_automatic, inbound.metadata) == (False, {})


def test_reply_with_thread_keys_token_and_subject_tag():
    inbound = parsed("reply_threaded.eml")
    assert inbound.thread_keys == ("<CAF0001@mail.example.com>",)
    assert inbound.ticket_reference == "SD-1042"
    assert inbound.reference_trusted is False
    assert inbound.recipients == ("support+abc123@servicedesk.example", "bob@example.com")
    assert inbound.metadata == {"reply_token": "abc123"}
    assert inbound.reply_token == "abc123"
    assert inbound.is_automatic is False


def test_reply_token_from_delivered_to_and_thread_key_cap():
    refs = b" ".join(b"<r%d@example.com>" % i for i in range(80))
    raw = (
        b"From: a@example.com\r\nTo: team@example.com\r\nDelivered-To: support+tok-9.x@servicedesk.example\r\n"
        b"Message-ID: <self@example.com>\r\nIn-Reply-To: <parent@example.com>\r\nReferences: "
        + refs
        + b" <self@example.com>\r\n\r\nb\r\n"
    )
    inbound = parse_email(raw).inbound
    assert inbound.metadata == {"reply_token": "tok-9.x"}
    assert inbound.reply_token == "tok-9.x"
    assert inbound.recipients == ("team@example.com",)
    assert len(inbound.thread_keys) == 50
    assert inbound.thread_keys[:3] == ("<parent@example.com>", "<r79@example.com>", "<r78@example.com>")


def test_quoted_gmail_history_trimmed_for_display():
    result = parse_email(load("quoted_gmail.eml"))
    assert result.display_text == "Yes, it works now."
    assert result.inbound.text == (
        "Yes, it works now.\n\nOn Mon, May 6, 2024 at 10:00 AM Service desk <support@servicedesk.example>\n"
        "wrote:\n\n> Please try again.\n> Regards"
    )


def test_quoted_outlook_history_and_signature_trimmed():
    result = parse_email(load("quoted_outlook.eml"))
    assert result.display_text == "Thanks, done."
    assert result.inbound.text.endswith("Subject: Printer\n\nPlease try again.")


def test_quoted_chinese_history_trimmed():
    result = parse_email(load("quoted_chinese.eml"))
    assert result.inbound.sender == SenderIdentity("email", "lilei@example.cn", "李雷")
    assert result.inbound.subject == "回复：打印机"
    assert result.display_text == "好的，已经修好了。"


@pytest.mark.parametrize(
    ("text", "display"),
    [
        ("Answer\n\n-----Original Message-----\nFrom: x\nOld", "Answer"),
        ("Answer\nFrom: Desk <d@example.com>\nSent: Monday\nTo: me\n\nOld", "Answer"),
        ("Answer\n> inline quote\nMiddle answer\n> trailing\n>\n", "Answer\n> inline quote\nMiddle answer"),
        ("> only quoted", "> only quoted"),
    ],
)
def test_display_trimming_rules(text, display):
    raw = b"From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text.encode()
    assert parse_email(raw).display_text == display


def test_over_size_is_quarantined_before_parsing(settings):
    raw = BASE + b"\r\n" + b"x" * (25 * 1024 * 1024)
    assert quarantined(raw) == f"too large: {len(raw)} bytes > 26214400"
    settings.SERVICEDESK_EMAIL = {"MAX_BYTES": 1000}
    assert len(BASE) == 75
    assert quarantined(BASE + b"\r\n" + b"y" * 1000) == "too large: 1077 bytes > 1000"


def test_deep_mime_nesting_is_quarantined():
    def nest(level: int) -> bytes:
        if level == 0:
            return b"Content-Type: text/plain\r\n\r\ninner\r\n"
        boundary = b"b%d" % level
        return (
            b"Content-Type: multipart/mixed; boundary="
            + boundary
            + b"\r\n\r\n--"
            + boundary
            + b"\r\n"
            + nest(level - 1)
            + b"\r\n--"
            + boundary
            + b"--\r\n"
        )

    assert quarantined(b"From: a@example.com\r\n" + nest(25)) == "MIME nesting deeper than 20"
    assert parse_email(b"From: a@example.com\r\n" + nest(20)).inbound.text == "inner"


def test_too_many_addresses():
    to = b", ".join(b"u%d@example.com" % i for i in range(300))
    cc = b", ".join(b"c%d@example.com" % i for i in range(201))
    assert (
        quarantined(b"From: a@example.com\r\nTo: " + to + b"\r\nCc: " + cc + b"\r\n\r\nb\r\n")
        == "more than 500 addresses"
    )


def test_huge_header_block():
    raw = b"From: a@example.com\r\n" + b"X-Filler: " + b"a" * 70000 + b"\r\n\r\nbody\r\n"
    assert quarantined(raw) == "header block over 65536 bytes"
    assert quarantined(b"From: a@example.com\r\n" + b"X: y\r\n" * 20000) == "header block over 65536 bytes"


def test_hostile_nesting_is_quarantined_with_its_reason():
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(5000))
    assert quarantined(b"From: a@example.com\r\n" + deep) == "MIME nesting deeper than 20"
    assert (
        quarantined(b"From: a@example.com\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 3000)
        == "MIME nesting deeper than 20"
    )
    assert (
        quarantined(b"From: a@example.com\r\nTo: " + b"(" * 60000 + b"\r\n\r\nx") == "address header nested too deeply"
    )


def test_missing_from_is_quarantined():
    assert quarantined(load("missing_from.eml")) == "no sender address"


def test_sender_header_used_when_from_missing_and_raw_hash_as_id():
    raw = load("sender_only.eml")
    inbound = parse_email(raw).inbound
    assert inbound.sender == SenderIdentity("email", "relay@example.com", "Robot Relay")
    assert inbound.external_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert inbound.rfc_message_id is None


def test_internal_error_becomes_quarantine(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr("channels_app.email.parse.html_to_text", broken)
    assert quarantined(load("html_only.eml")) == "parser error: ValueError"


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n", b"\x00" * 10, b"From:\r\n\r\n", b"From: not an address\r\n\r\nx"])
def test_empty_and_senderless_input(raw):
    assert quarantined(raw) == "no sender address"


def test_our_signed_message_ids_are_kept_and_forged_ones_dropped():
    from channels_app.email.message_ids import message_id_for_pk

    ours = message_id_for_pk(17)
    forged = ours.replace(ours.split(".")[2].split("@")[0], "f" * 16)
    raw = (
        b"From: a@example.com\r\nTo: support@servicedesk.example\r\nSubject: Re: x\r\n"
        b"Message-ID: <r1@example.com>\r\nIn-Reply-To: " + forged.encode() + b"\r\n"
        b"References: " + ours.encode() + b" <other@example.com>\r\n\r\nthanks\r\n"
    )
    assert parse_email(raw).inbound.thread_keys == ("<other@example.com>", ours)


def test_address_comments_nest_up_to_the_limit_whatever_the_python_version():
    from channels_app.email.parse import MAX_COMMENT_DEPTH, _comment_depth

    ok = b"(" * MAX_COMMENT_DEPTH + b"x" + b")" * MAX_COMMENT_DEPTH
    accepted = parse_email(b"From: a@example.com\r\nTo: b@example.com " + ok + b"\r\n\r\nx")
    assert accepted.quarantine_reason is None and accepted.inbound is not None
    over = b"(" * (MAX_COMMENT_DEPTH + 1) + b")" * (MAX_COMMENT_DEPTH + 1)
    assert (
        quarantined(b"From: a@example.com\r\nCc: b@example.com " + over + b"\r\n\r\nx")
        == "address header nested too deeply"
    )
    # Parentheses inside a quoted name or escaped are not comments.
    assert _comment_depth('"((((" <a@example.com> (note \\( (inner))') == 2

"""Short texts in many languages, declared right, declared wrong and undeclared.

The order (parse.decode_bytes): the declared charset when the bytes are valid
in it, UTF-8, the legacy charsets the message declares elsewhere, Windows-1252
for Western text, then a statistical guess among the charsets mail uses.
"""
# ruff: noqa: RUF001  (the expected values are real text with their own punctuation)

from __future__ import annotations

import base64

import pytest

from channels_app.email.parse import decode_bytes, parse_email

SAMPLES = [
    ("French", "Café crème à bientôt", "iso-8859-1"),
    ("French", "Café crème à bientôt", "windows-1252"),
    ("German", "Grüße aus München, schöne Woche!", "iso-8859-1"),
    ("Spanish", "¿Dónde está mi pedido? Mañana.", "windows-1252"),
    ("Polish", "Zażółć gęślą jaźń", "iso-8859-2"),
    ("Czech", "Příliš žluťoučký kůň úpěl ďábelské ódy", "iso-8859-2"),
    ("Russian", "Привет, как дела? Заказ не пришёл.", "koi8-r"),
    ("Russian", "Здравствуйте", "koi8-r"),
    ("Russian", "Привет, как дела? Заказ не пришёл.", "windows-1251"),
    ("Chinese", "您好，我的订单还没有到。", "gb2312"),
    ("Chinese", "请帮我查一下发票。", "gbk"),
    ("Japanese", "こんにちは、注文がまだ届きません。", "shift_jis"),
    ("Japanese", "ありがとう", "shift_jis"),
]
IDS = [f"{language}-{charset}-{text[:6]}" for language, text, charset in SAMPLES]


def body_of(raw_body: bytes, content_type: str, *, subject: bytes = b"Order") -> str:
    raw = (
        b"From: Kim <kim@example.com>\r\nTo: support@servicedesk.example\r\nSubject: " + subject + b"\r\n"
        b"Message-ID: <cs@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: " + content_type.encode() + b"\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + raw_body + b"\r\n"
    )
    inbound = parse_email(raw).inbound
    assert inbound is not None
    return inbound.text


@pytest.mark.parametrize(("language", "text", "charset"), SAMPLES, ids=IDS)
def test_declared_right(language, text, charset):
    assert body_of(text.encode(charset), f"text/plain; charset={charset}") == text


@pytest.mark.parametrize(("language", "text", "charset"), SAMPLES, ids=IDS)
@pytest.mark.parametrize("declared", ["utf-8", "us-ascii"])
def test_declared_wrong(language, text, charset, declared):
    assert body_of(text.encode(charset), f"text/plain; charset={declared}") == text


@pytest.mark.parametrize(("language", "text", "charset"), SAMPLES, ids=IDS)
def test_undeclared(language, text, charset):
    assert body_of(text.encode(charset), "text/plain") == text


def test_latin1_labelled_utf8_is_not_read_as_central_european():
    assert body_of("Café crème à bientôt".encode("latin-1"), "text/plain; charset=utf-8") == "Café crème à bientôt"


def test_chinese_labelled_japanese_is_read_as_chinese():
    assert (
        body_of("您好，我的订单还没有到。".encode("gbk"), "text/plain; charset=shift_jis") == "您好，我的订单还没有到。"
    )


def test_the_legacy_charset_of_the_subject_is_preferred_to_a_guess():
    # Two letters are too few to guess from; the subject says KOI8-R.
    subject = b"=?koi8-r?B?" + base64.b64encode("Заказ".encode("koi8-r")) + b"?="
    assert body_of("Да".encode("koi8-r"), "text/plain; charset=utf-8", subject=subject) == "Да"


def test_the_legacy_charset_of_another_part_is_preferred():
    raw = (
        b"From: kim@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="a"\r\n\r\n'
        b"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + "Да".encode("koi8-r") + b"\r\n"
        b"--a\r\nContent-Type: text/html; charset=koi8-r\r\n\r\n<p>" + "Да".encode("koi8-r") + b"</p>\r\n"
        b"--a--\r\n"
    )
    assert parse_email(raw).inbound.text == "Да"


@pytest.mark.parametrize(
    ("data", "hints", "expected"),
    [
        (b"\xb1", ("iso-8859-2",), "ą"),
        (b"\xb1", (), "±"),
        ("naïve résumé".encode("cp1252"), ("utf-8", "us-ascii"), "naïve résumé"),
    ],
)
def test_decode_bytes_hints(data, hints, expected):
    assert decode_bytes(data, "utf-8", hints=hints) == expected

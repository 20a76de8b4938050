"""Raw RFC 5322 mail -> ``InboundMessage``, or a quarantine reason.

``parse_email`` is a pure function: it reads settings for its limits and our
own addresses, and touches no database, network or file. It never raises: a
message it cannot make sense of comes back with a short quarantine reason, so
a hostile or broken mail never stops a worker and is never lost.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import html as html_lib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser, HeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from typing import Any

from django.conf import settings

from channels_app.email.message_ids import looks_like_ours, message_id_is_ours
from servicedesk.core.text import clean_filename, clean_text, header_safe
from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, SenderIdentity

# --- Limits and own addresses -------------------------------------------------

DEFAULT_LIMITS = {
    "MAX_BYTES": 25 * 1024 * 1024,
    "MAX_HEADER_BYTES": 64 * 1024,
    "MAX_DEPTH": 20,
    "MAX_ADDRESSES": 500,
}
MAX_THREAD_KEYS = 50
MAX_MESSAGE_ID_LENGTH = 250


@dataclass(frozen=True)
class EmailLimits:
    max_bytes: int = DEFAULT_LIMITS["MAX_BYTES"]
    max_header_bytes: int = DEFAULT_LIMITS["MAX_HEADER_BYTES"]
    max_depth: int = DEFAULT_LIMITS["MAX_DEPTH"]
    max_addresses: int = DEFAULT_LIMITS["MAX_ADDRESSES"]


def _email_settings() -> dict[str, Any]:
    value = getattr(settings, "SERVICEDESK_EMAIL", {})
    return value if isinstance(value, dict) else {}


def email_limits() -> EmailLimits:
    """Limits from ``settings.SERVICEDESK_EMAIL`` (MAX_BYTES, MAX_HEADER_BYTES, MAX_DEPTH, MAX_ADDRESSES)."""
    conf = _email_settings()
    values = {key: int(conf.get(key, default)) for key, default in DEFAULT_LIMITS.items()}
    return EmailLimits(
        max_bytes=values["MAX_BYTES"],
        max_header_bytes=values["MAX_HEADER_BYTES"],
        max_depth=values["MAX_DEPTH"],
        max_addresses=values["MAX_ADDRESSES"],
    )


def own_addresses() -> frozenset[str]:
    """Addresses that are ours: the support address, DEFAULT_FROM_EMAIL and SERVICEDESK_EMAIL["OWN_ADDRESSES"]."""
    desk = getattr(settings, "SERVICEDESK", {}) or {}
    candidates = [
        str(desk.get("SUPPORT_ADDRESS", "") or ""),
        parseaddr(str(getattr(settings, "DEFAULT_FROM_EMAIL", "") or ""))[1],
    ]
    candidates += [str(a) for a in _email_settings().get("OWN_ADDRESSES", ()) or ()]
    return frozenset(a.strip().lower() for a in candidates if "@" in a)


def _reference_prefix() -> str:
    desk = getattr(settings, "SERVICEDESK", {}) or {}
    return str(desk.get("REFERENCE_PREFIX", "SD") or "SD")


# --- Result -------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedEmail:
    """Either ``inbound`` is set, or ``quarantine_reason`` says why the mail was set aside."""

    inbound: InboundMessage | None
    quarantine_reason: str | None = None
    # The text with quoted history and signature trimmed; inbound.text keeps it all.
    display_text: str = ""


class _Quarantine(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_email(raw: bytes, *, received_at: datetime | None = None) -> ParsedEmail:
    """Parse one raw message. Never raises: any failure becomes a quarantine reason."""
    try:
        return _parse(raw, received_at)
    except _Quarantine as exc:
        return ParsedEmail(inbound=None, quarantine_reason=exc.reason)
    except Exception as exc:  # any defect in a hostile mail must not reach the worker
        return ParsedEmail(inbound=None, quarantine_reason=f"parser error: {type(exc).__name__}")


# --- Charsets -----------------------------------------------------------------

_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "csgb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "big5": "big5hkscs",
    "big-5": "big5hkscs",
    "x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "big5-hkscs": "big5hkscs",
    "cp950": "big5hkscs",
    "windows-874": "cp874",
    "x-windows-874": "cp874",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "ascii",
}
_UNKNOWN_CHARSETS = {"", "x-unknown", "unknown-8bit", "unknown", "x-user-defined", "default", "charset"}


def _codec_for(label: str | None) -> str | None:
    """The Python codec for a declared charset label, or None when it is unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower()
    name = _CHARSET_ALIASES.get(name, name)
    if name in _UNKNOWN_CHARSETS:
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    return _CHARSET_ALIASES.get(info.name, info.name)


def decode_bytes(data: bytes, label: str | None = None, *, hints: Iterable[str] = ()) -> str:
    """Text from ``data``, by the first of these that fits:

    1. the declared charset, when the bytes are valid in it;
    2. ASCII, then UTF-8, when they are valid;
    3. the legacy charsets declared elsewhere in the same message (``hints``:
       other parts, encoded words in its headers), which is what a mislabelled
       part most often really is;
    4. Windows-1252, when the text it gives looks Western (``_looks_western``):
       short Western text is where a statistical guess goes wrong most;
    5. a statistical guess among the charsets mail uses (``_guess``);
    6. UTF-8 with replacement characters.
    """
    if not data:
        return ""
    codec = _codec_for(label)
    if codec:
        try:
            return data.decode(codec).replace("\x00", "")
        except (UnicodeError, LookupError, ValueError, TypeError):
            pass
    if data.isascii():
        return data.decode("ascii").replace("\x00", "")
    try:
        return data.decode("utf-8").replace("\x00", "")
    except UnicodeDecodeError:
        pass
    for hint in hints:
        hint_codec = _codec_for(hint)
        if hint_codec and hint_codec not in ("ascii", "utf-8"):
            try:
                return data.decode(hint_codec).replace("\x00", "")
            except (UnicodeError, LookupError, ValueError, TypeError):
                continue
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = ""
    if western and _looks_western(western):
        return western.replace("\x00", "")
    guessed = _guess(data)
    if guessed is not None:
        return guessed.replace("\x00", "")
    return data.decode("utf-8", errors="replace").replace("\x00", "")


# Charsets a statistical guess chooses from, in the order that breaks a tie
# (the same low chaos and coherence): mail in other charsets declares them.
# Chinese before Korean: the same bytes are valid in both, and the desk's
# users write Chinese.
_GUESS_CHARSETS = (
    "gb18030",
    "big5hkscs",
    "shift_jis",
    "euc_jp",
    "koi8_r",
    "cp1251",
    "iso8859_2",
    "cp1250",
    "cp1252",
    "euc_kr",
    "cp1253",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1257",
    "cp874",
    "koi8_u",
)


def _guess(data: bytes) -> str | None:
    """charset-normalizer's reading of ``data`` among ``_GUESS_CHARSETS``: least chaos, most coherence, then the order."""
    # Imported here: only mail with undeclared 8-bit text needs it, and it
    # costs every mail pipe process's start-up (docs/performance.md, "Start-up").
    import charset_normalizer

    results = list(charset_normalizer.from_bytes(data, cp_isolation=list(_GUESS_CHARSETS)))
    if not results:
        return None

    def rank(match: Any) -> tuple[float, float, int]:
        order = _GUESS_CHARSETS.index(match.encoding) if match.encoding in _GUESS_CHARSETS else len(_GUESS_CHARSETS)
        return (round(match.chaos, 3), -round(match.coherence, 3), order)

    return str(min(results, key=rank))


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _looks_western(text: str) -> bool:
    """Whether Windows-1252 text reads as a Western language: accented letters
    among plain ones. Other charsets read as Windows-1252 give words made only
    of accented letters (Cyrillic, CJK) or symbols inside words (``Za¿ó³æ``)."""
    letters = [c for c in text if c.isalpha()]
    accented = [c for c in letters if not c.isascii()]
    if not accented:
        return True
    if len(accented) * 2 > len(letters):
        return False
    for index in range(1, len(text) - 1):
        char = text[index]
        if not char.isascii() and not char.isalpha() and text[index - 1].isalpha() and text[index + 1].isalpha():
            return False
    return not any(len(word) >= 3 and not any(c.isascii() for c in word) for word in _WORD.findall(text))


def _to_bytes(value: str) -> bytes:
    """The original bytes of a header value read with surrogate escapes."""
    return value.encode("utf-8", "surrogateescape")


# --- Headers ------------------------------------------------------------------

_FOLD = re.compile(r"\r\n|\r|\n")
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([QqBb])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)[ \t]+(=\?)")


def _decode_q(text: str) -> bytes:
    out = bytearray()
    raw = text.replace("_", " ").encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == 0x3D and re.fullmatch(rb"[0-9A-Fa-f]{2}", raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
            continue
        out.append(ch)
        i += 1
    return bytes(out)


def _decode_b(text: str) -> bytes:
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text)
    cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned)
    except (binascii.Error, ValueError):
        return b""


def decode_header_text(value: str, *, hints: Iterable[str] = ()) -> str:
    """A header value as text: unfolded, 8-bit bytes and RFC 2047 encoded words decoded, NUL removed."""
    hints = tuple(hints)
    text = decode_bytes(_to_bytes(_FOLD.sub("", value or "")), None, hints=hints)
    text = _BETWEEN_WORDS.sub(r"\1\2", text)

    def word(match: re.Match[str]) -> str:
        charset = match.group(1).split("*", 1)[0]
        payload = _decode_q(match.group(3)) if match.group(2) in "Qq" else _decode_b(match.group(3))
        return decode_bytes(payload, charset, hints=hints)

    return _ENCODED_WORD.sub(word, text).replace("\x00", "")


def _raw_values(msg: Message, name: str) -> list[str]:
    lname = name.lower()
    return [str(value) for key, value in msg.raw_items() if str(key).lower() == lname]


def _first(msg: Message, name: str) -> str:
    values = _raw_values(msg, name)
    return values[0] if values else ""


_ADDRESS = re.compile(r"^[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+$")


_MAILBOX_SPECIALS = re.compile(r'[\s@<>()\[\],;:"\\]')


def _mailbox_decoded(address: str, hints: tuple[str, ...]) -> str:
    """``address`` with a mailbox name written as one RFC 2047 word (``=?utf-8?q?jos=C3=A9?=@example.com``,
    as some programs write a non-ASCII name) read as the name it stands for (``josé@example.com``).

    RFC 2047 does not allow encoded words there; RFC 6532 mail carries the name in UTF-8, which
    needs no decoding. A word that decodes to something no mailbox name can hold is left as it is.
    """
    local, at, domain = address.rpartition("@")
    if not at or not _ENCODED_WORD.fullmatch(local):
        return address
    decoded = decode_header_text(local, hints=hints)
    if not decoded or _MAILBOX_SPECIALS.search(decoded) or not decoded.isprintable():
        return address
    return f"{decoded}@{domain}"


def _addresses(msg: Message, names: Iterable[str], hints: tuple[str, ...]) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs from the named headers, invalid entries dropped."""
    values = [decode_bytes(_to_bytes(_FOLD.sub("", v)), None, hints=hints) for n in names for v in _raw_values(msg, n)]
    result: list[tuple[str, str]] = []
    for name, address in getaddresses(values):
        address = _mailbox_decoded(address.strip(), hints).lower().replace("\x00", "")
        if len(address) > 254 or not _ADDRESS.match(address):
            continue
        result.append((header_safe(decode_header_text(name, hints=hints), max_length=200), address))
    return result


# Comments nest in address headers ("(a (b))"); real ones go two or three deep.
MAX_COMMENT_DEPTH = 100


def _comment_depth(value: str) -> int:
    """The deepest nesting of parenthesised comments in a header value (quoted strings and escapes skipped)."""
    depth = deepest = 0
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"' and not depth:
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")" and depth:
            depth -= 1
    return deepest


def _count_addresses(msg: Message) -> int:
    values = [_FOLD.sub("", v) for n in ("to", "cc") for v in _raw_values(msg, n)]
    # Checked here rather than left to the standard library's parser, which
    # recurses into nested comments on some Python versions and not on others.
    if any(_comment_depth(value) > MAX_COMMENT_DEPTH for value in values):
        raise _Quarantine("address header nested too deeply")
    return sum(1 for _, address in getaddresses(values) if address.strip())


_MSGID = re.compile(rf"<[^<>\s]{{1,{MAX_MESSAGE_ID_LENGTH}}}>")


def _message_ids(value: str) -> list[str]:
    return _MSGID.findall(_utf8_header(value or ""))


def _utf8_header(value: str) -> str:
    """A header value read with surrogate escapes, its 8-bit bytes as UTF-8 (RFC 6532 allows UTF-8 in
    Message-IDs); bytes that are not UTF-8 become U+FFFD, which the database can store."""
    return _to_bytes(value).decode("utf-8", "replace")


def _message_id(msg: Message) -> str | None:
    value = _utf8_header(_FOLD.sub("", _first(msg, "message-id"))).replace("\x00", "").strip()
    found = _message_ids(value)
    if found:
        return found[0]
    if value and "@" in value and len(value) <= MAX_MESSAGE_ID_LENGTH and not re.search(r"[\s<>]", value):
        return f"<{value}>"
    return None


@dataclass(frozen=True)
class HeaderSummary:
    """What the quarantine shows of a mail whatever became of it: sender, subject and Message-ID."""

    sender: str = ""
    subject: str = ""
    rfc_message_id: str | None = None


def header_summary(raw: bytes) -> HeaderSummary:
    """Sender, subject and Message-ID read from the header block alone (at most the configured header
    size), so a mail quarantined before or during parsing still shows them. Never raises."""
    try:
        limit = email_limits().max_header_bytes
        head = bytes(raw or b"")[: limit + 4].replace(b"\x00", b"")
        match = _BLANK_LINE.search(head)
        headers = BytesHeaderParser(policy=compat32).parsebytes(head[: match.start() + 2] if match else head)
        hints = _charset_hints(headers)
        subject = header_safe(decode_header_text(_first(headers, "subject"), hints=hints), max_length=300)
        senders = _addresses(headers, ["from"], hints) or _addresses(headers, ["sender"], hints)
        return HeaderSummary(
            sender=senders[0][1] if senders else "", subject=subject, rfc_message_id=_message_id(headers)
        )
    except Exception:  # a hostile header block must not stop the quarantine itself
        return HeaderSummary()


# --- Limits checked before the full parse -------------------------------------

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _check_limits_before_parse(raw: bytes, limits: EmailLimits) -> None:
    if len(raw) > limits.max_bytes:
        raise _Quarantine(f"too large: {len(raw)} bytes > {limits.max_bytes}")
    match = _BLANK_LINE.search(raw, 0, limits.max_header_bytes + 4)
    header_end = match.start() if match else len(raw)
    if header_end > limits.max_header_bytes:
        raise _Quarantine(f"header block over {limits.max_header_bytes} bytes")
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw[: header_end + 2] if match else raw)
    try:
        count = _count_addresses(headers)
    except RecursionError:
        raise _Quarantine("address header nested too deeply") from None
    if count > limits.max_addresses:
        raise _Quarantine(f"more than {limits.max_addresses} addresses")


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    return []


def _check_depth(msg: Message, max_depth: int) -> None:
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > max_depth:
            raise _Quarantine(f"MIME nesting deeper than {max_depth}")
        stack.extend((child, depth + 1) for child in _children(part))


# --- HTML to text -------------------------------------------------------------

_PARAGRAPH_TAGS = {
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "table",
    "ul",
    "ol",
    "hr",
    "pre",
    "dl",
    "section",
    "article",
    "header",
    "footer",
    "address",
}
_LINE_TAGS = {"div", "li", "tr", "dt", "dd"}
_SKIP_TAGS = {"script", "style", "head", "title", "template", "noscript"}


class _TextRenderer(HTMLParser):
    """Text of an HTML body: paragraphs separated by a blank line, lines by a line break."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.pending = 0
        self.skip = 0
        self.pre = 0

    def _break(self, level: int) -> None:
        self.pending = max(self.pending, level)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag == "br":
            self.chunks.append("\n" * max(self.pending, 1))
            self.pending = 0
        elif tag in _PARAGRAPH_TAGS:
            self._break(2)
            self.pre += tag == "pre"
        elif tag in _LINE_TAGS:
            self._break(1)
        elif tag in ("td", "th"):
            self.chunks.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            return
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _PARAGRAPH_TAGS:
            self._break(2)
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
        elif tag in _LINE_TAGS:
            self._break(1)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        text = data if self.pre else re.sub(r"[ \t\r\n\f]+", " ", data)
        if not text.strip():
            if self.chunks and not self.pending:
                self.chunks.append(text)
            return
        if self.pending and self.chunks:
            self.chunks.append("\n" * self.pending)
        self.pending = 0
        self.chunks.append(text)


def html_to_text(html: str) -> str:
    """A plain-text rendering of an HTML body: tags stripped, entities unescaped, block breaks kept."""
    try:
        renderer = _TextRenderer()
        renderer.feed(html)
        renderer.close()
        text = "".join(renderer.chunks)
    except Exception:  # the standard parser has assertion paths on broken markup
        text = html_lib.unescape(re.sub(r"<[^>]*>", " ", html))
    lines = [" ".join(line.split()) if line.strip() else "" for line in text.replace("\xa0", " ").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- Quoted history -----------------------------------------------------------

_QUOTE_HEADERS = [
    re.compile(r"^\s*-{2,}\s*(Original Message|Forwarded message|原始邮件|原始郵件)\s*-{2,}", re.IGNORECASE),
    re.compile(r"^\s*_{10,}\s*$"),
    re.compile(r"^\s*(在|于).{0,200}写道[:\uff1a]\s*$"),
    re.compile(r"^\s*On\s.{0,300}\bwrote:\s*$", re.IGNORECASE),
]
_OUTLOOK_FROM = re.compile(r"^\s*\*?(From|发件人|寄件者)\s*[:\uff1a]", re.IGNORECASE)
_OUTLOOK_SENT = re.compile(r"^\s*\*?(Sent|Date|发送时间|日期|寄件日期)\s*[:\uff1a]", re.IGNORECASE)


def _quote_start(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        if line == "-- ":
            return index
        if _QUOTE_HEADERS[1].match(line):
            following = [rest for rest in lines[index + 1 : index + 3] if rest.strip()]
            if following and _OUTLOOK_FROM.match(following[0]):
                return index
            continue
        if any(p.match(line) for p in (_QUOTE_HEADERS[0], _QUOTE_HEADERS[2], _QUOTE_HEADERS[3])):
            return index
        if (
            line.lstrip().startswith("On ")
            and index + 1 < len(lines)
            and _QUOTE_HEADERS[3].match(line + " " + lines[index + 1])
        ):
            return index
        if _OUTLOOK_FROM.match(line) and any(_OUTLOOK_SENT.match(rest) for rest in lines[index + 1 : index + 4]):
            return index
    return None


def trim_quoted(text: str) -> str:
    """The new part of a reply: quoted history, reply headers and the signature removed."""
    lines = text.split("\n")
    start = _quote_start(lines)
    if start is not None and any(line.strip() for line in lines[:start]):
        lines = lines[:start]
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        lines.pop()
    trimmed = "\n".join(lines).strip()
    return trimmed or text.strip()


# --- Body and attachments -----------------------------------------------------

_DEFAULT_NAMES = {
    "message/rfc822": "forwarded message.eml",
    "message/global": "forwarded message.eml",
    "application/pkcs7-signature": "smime.p7s",
    "application/x-pkcs7-signature": "smime.p7s",
    "application/pgp-signature": "signature.asc",
    "application/pgp-encrypted": "pgp-encrypted.asc",
    "application/pkcs7-mime": "smime.p7m",
    "application/x-pkcs7-mime": "smime.p7m",
    "message/delivery-status": "delivery-status.txt",
    "text/rfc822-headers": "returned headers.txt",
    "text/calendar": "invite.ics",
    "image/png": "image.png",
    "image/jpeg": "image.jpg",
    "image/gif": "image.gif",
    "application/pdf": "attachment.pdf",
}


@dataclass
class _Collected:
    hints: tuple[str, ...]
    text: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[InboundAttachment] = field(default_factory=list)
    dsn_recipient: str = ""
    dsn_for: str = ""
    # Message-IDs of mail enclosed whole or as headers (a bounce's returned copy).
    enclosed_ids: list[str] = field(default_factory=list)


def _param(part: Message, name: str, header: str = "content-type") -> str:
    try:
        value = part.get_param(name, header=header)
    except Exception:
        return ""
    if isinstance(value, tuple):
        charset, _, text = value
        try:
            return _to_bytes(text).decode(_codec_for(charset) or "utf-8", "replace")
        except (UnicodeError, LookupError):
            return str(text)
    return str(value or "")


def _disposition(part: Message) -> str:
    value = _FOLD.sub("", _first(part, "content-disposition"))
    return value.split(";", 1)[0].strip().lower()


def _filename(part: Message, hints: tuple[str, ...]) -> str:
    try:
        name = part.get_filename() or _param(part, "name")
    except Exception:
        name = _param(part, "name")
    if not name:
        return ""
    return decode_header_text(str(name), hints=hints)


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    return b""


def _part_text(part: Message, hints: tuple[str, ...]) -> str:
    charset = ""
    try:
        charset = part.get_content_charset() or ""
    except Exception:
        charset = _param(part, "charset")
    return decode_bytes(_payload_bytes(part), charset, hints=hints)


def _message_bytes(inner: Message) -> bytes:
    try:
        return inner.as_bytes(policy=compat32)
    except Exception:
        try:
            return inner.as_string(policy=compat32).encode("utf-8", "surrogateescape")
        except Exception:
            return b""


def _attach(part: Message, content_type: str, content: bytes, collected: _Collected, name: str = "") -> None:
    default = _DEFAULT_NAMES.get(content_type, "attachment")
    filename = clean_filename(name or _filename(part, collected.hints), default=default)
    content_id = header_safe(_FOLD.sub("", _first(part, "content-id")).strip().strip("<>").strip(), max_length=250)
    collected.attachments.append(
        InboundAttachment(
            filename=filename,
            content_type=header_safe(content_type, max_length=100) or "application/octet-stream",
            content=content,
            content_id=content_id,
        )
    )


def _attach_message(part: Message, collected: _Collected) -> None:
    inners = _children(part)
    if inners:
        collected.enclosed_ids.extend(_message_ids(_FOLD.sub("", _first(inners[0], "message-id")))[:1])
    content = _message_bytes(inners[0]) if inners else _payload_bytes(part)
    name = _filename(part, collected.hints)
    if not name and inners:
        subject = header_safe(decode_header_text(_first(inners[0], "subject"), hints=collected.hints), max_length=150)
        name = f"{subject}.eml" if subject else ""
    if name and not name.lower().endswith(".eml"):
        # Kept as the .eml file it is, whatever name the sender's program gave it.
        name += ".eml"
    _attach(part, part.get_content_type(), content, collected, name=name)


def _collect_delivery_status(part: Message, collected: _Collected) -> None:
    """The first recipient the report says failed; a delayed or delivered one is not a bounce."""
    for block in _children(part):
        action = _FOLD.sub("", _first(block, "action")).split("(", 1)[0].strip().lower()
        if action and action != "failed":
            continue
        for name in ("final-recipient", "original-recipient"):
            value = decode_bytes(_to_bytes(_FOLD.sub("", _first(block, name))), None)
            found = re.search(r"<?([^\s<>;]+@[^\s<>;]+)>?\s*$", value)
            if found and not collected.dsn_recipient:
                collected.dsn_recipient = header_safe(found.group(1).lower(), max_length=254)


def _collect_report(part: Message, collected: _Collected) -> None:
    for child in _children(part):
        if child.get_content_type() in (
            "message/rfc822",
            "text/rfc822-headers",
            "message/global",
            "message/global-headers",
        ):
            inners = _children(child)
            returned = (
                inners[0] if inners else HeaderParser(policy=compat32).parsestr(_part_text(child, collected.hints))
            )
            for name in ("original-message-id", "message-id"):
                ids = _message_ids(_FOLD.sub("", _first(returned, name)))
                if ids and not collected.dsn_for:
                    collected.dsn_for = ids[0]


def _walk(part: Message, collected: _Collected) -> None:
    ctype = part.get_content_type()
    if ctype in ("message/rfc822", "message/global"):
        _attach_message(part, collected)
        return
    if ctype.startswith("message/") and part.is_multipart():
        # message/delivery-status and kin: header blocks, kept whole as one attachment
        if ctype == "message/delivery-status":
            _collect_delivery_status(part, collected)
        _attach(part, ctype, b"\n".join(_message_bytes(block) for block in _children(part)), collected)
        return
    if part.is_multipart():
        children = _children(part)
        if ctype == "multipart/report":
            _collect_report(part, collected)
        if ctype == "multipart/alternative":
            _walk_alternative(children, collected)
            return
        for child in children:
            _walk(child, collected)
        return
    if ctype.startswith("multipart/"):
        ctype = "text/plain"  # a multipart without a usable boundary: its body is shown as text
    if ctype == "text/rfc822-headers":
        returned = HeaderParser(policy=compat32).parsestr(_part_text(part, collected.hints))
        collected.enclosed_ids.extend(_message_ids(_FOLD.sub("", _first(returned, "message-id")))[:1])
    disposition = _disposition(part)
    named_extra_text = disposition == "inline" and bool(collected.text) and bool(_filename(part, collected.hints))
    if disposition != "attachment" and ctype in ("text/plain", "text/html") and not named_extra_text:
        (collected.text if ctype == "text/plain" else collected.html).append(_part_text(part, collected.hints))
        return
    _attach(part, ctype, _payload_bytes(part), collected)


def _walk_alternative(children: list[Message], collected: _Collected) -> None:
    """One rendering of each kind: the first plain text, the last (richest) HTML; other parts kept as attachments."""
    text: list[str] = []
    html: list[str] = []
    for child in children:
        sub = _Collected(hints=collected.hints)
        _walk(child, sub)
        if sub.text and not text:
            text = sub.text
        if sub.html:
            html = sub.html
        collected.attachments.extend(sub.attachments)
        collected.dsn_for = collected.dsn_for or sub.dsn_for
        collected.dsn_recipient = collected.dsn_recipient or sub.dsn_recipient
        collected.enclosed_ids.extend(sub.enclosed_ids)
    collected.text.extend(text)
    collected.html.extend(html)


# --- Automatic mail -----------------------------------------------------------

_ROBOT_LOCAL = re.compile(r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?)([+._-].*)?$", re.IGNORECASE)
_OOF_SUBJECT = re.compile(r"^\s*(out of office|automatic reply|自动回复)", re.IGNORECASE)
_SUPPRESS = {"all", "dr", "autoreply", "oof"}


def _base_address(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _auto_submitted(msg: Message) -> list[str]:
    """The keyword of each Auto-Submitted header, without parameters or comments."""
    values = [re.sub(r"\([^)]*\)", "", _FOLD.sub("", v)) for v in _raw_values(msg, "auto-submitted")]
    return [v.split(";", 1)[0].strip().lower() for v in values]


def _automatic_reason(msg: Message, sender: str, own: frozenset[str], is_dsn: bool) -> str:
    def header(name: str) -> str:
        return " ".join(_FOLD.sub("", v) for v in _raw_values(msg, name)).strip().lower()

    if is_dsn:
        return "delivery-status"
    if _raw_values(msg, "x-servicedesk-ticket"):
        return "loop-header"
    if sender in own or _base_address(sender) in own:
        return "own-address"
    if any(v != "no" for v in _auto_submitted(msg)):
        return "auto-submitted"
    if any(t.strip() in _SUPPRESS for t in header("x-auto-response-suppress").split(",")):
        return "x-auto-response-suppress"
    if any(v.split(";", 1)[0].strip().lower() in ("bulk", "junk", "list") for v in _raw_values(msg, "precedence")):
        return "precedence"
    if _raw_values(msg, "list-id"):
        return "list-id"
    if _raw_values(msg, "list-unsubscribe"):
        return "list-unsubscribe"
    if any(re.sub(r"\s+", "", _FOLD.sub("", v)) == "<>" for v in _raw_values(msg, "return-path")):
        return "return-path"
    if _ROBOT_LOCAL.match(sender.partition("@")[0]):
        return "robot-sender"
    return ""


def _is_out_of_office(msg: Message, subject: str) -> bool:
    if "auto-replied" in _auto_submitted(msg):
        return True
    if _raw_values(msg, "x-autoreply") or _raw_values(msg, "x-autorespond"):
        return True
    return bool(_OOF_SUBJECT.match(subject))


# --- Bounces without a delivery-status part -----------------------------------
#
# Many MTAs still return mail as plain text. Recognising one only sets the
# facts a bounce needs (the cited Message-ID, the failed address); whether it
# acts is decided by the bounce service, which trusts none of it until the
# Message-ID proves to be one we signed and sent to that address.

_BOUNCE_SENDER_LOCAL = re.compile(r"^(mailer-daemon|postmaster)([+._-].*)?$", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliverable\s*:|undelivered mail returned to sender|delivery status notification \(failure\)"
    r"|mail delivery failed|failure notice|returned mail\s*:|delivery failure|message not delivered"
    r"|undeliverable mail|mail delivery system)",
    re.IGNORECASE,
)
_BOUNCE_BODY = (
    "this is the mail system at host",  # Postfix
    "this message was created automatically by mail delivery software",  # Exim
    "hi. this is the qmail-send program",  # qmail
    "delivery to the following recipient failed permanently",  # Gmail
    "your message wasn't delivered to",  # Gmail
    "delivery has failed to these recipients or groups",  # Exchange
    "couldn't be delivered",  # Exchange ("Your message to ... couldn't be delivered.")
)
# Where the returned copy of the original starts: addresses below it are not the failed ones.
_BOUNCE_COPY_START = re.compile(
    r"^\s*(-{2,}\s*(below this line is a copy|this is a copy of the message|original message|"
    r"the original message|headers of the original)|original message headers\s*:)",
    re.IGNORECASE | re.MULTILINE,
)
_BOUNCE_ADDRESS = r"<?([^\s<>()\[\]\"',;:@]+@[^\s<>()\[\]\"',;:@]+\.[^\s<>()\[\]\"',;:@]*[A-Za-z0-9])>?"
_BOUNCE_RECIPIENT = (
    # Postfix and qmail: "<gone@example.com>: host ... said: 550 ..."
    re.compile(r"^\s*<([^\s<>@]+@[^\s<>@]+)>:", re.MULTILINE),
    # Exim, Gmail, Exchange: a list introduced by a line ending in a colon.
    re.compile(
        r"(?:address\(es\) failed|following addresses? failed|recipients? failed permanently"
        rf"|these recipients or groups)\s*:\s*\n(?:\s*\n)*\s*{_BOUNCE_ADDRESS}",
        re.IGNORECASE,
    ),
    # Gmail and Exchange in a sentence.
    re.compile(rf"(?:wasn't|was not|couldn't be|could not be) delivered to\s+{_BOUNCE_ADDRESS}", re.IGNORECASE),
    re.compile(rf"your message to\s+{_BOUNCE_ADDRESS}\s+couldn't be delivered", re.IGNORECASE),
)
_QUOTED_MESSAGE_ID = re.compile(rf"^[ \t>]*Message-ID:[ \t]*(<[^<>\s]{{1,{MAX_MESSAGE_ID_LENGTH}}}>)", re.I | re.M)


def _is_plain_bounce(msg: Message, sender: str, subject: str, text: str) -> bool:
    """A non-delivery report without a delivery-status part: from the mail system
    (a mailer-daemon or postmaster, or an empty Return-Path) and worded like one."""
    null_return = any(re.sub(r"\s+", "", _FOLD.sub("", v)) == "<>" for v in _raw_values(msg, "return-path"))
    if not (_BOUNCE_SENDER_LOCAL.match(sender.partition("@")[0]) or null_return):
        return False
    lowered = text[:4000].lower()
    return bool(_BOUNCE_SUBJECT.match(subject)) or any(marker in lowered for marker in _BOUNCE_BODY)


def _plain_bounce_recipient(text: str) -> str:
    """The failed address a plain-text report names, from its text above the returned copy."""
    copy = _BOUNCE_COPY_START.search(text)
    report = text[: copy.start()] if copy else text
    for pattern in _BOUNCE_RECIPIENT:
        found = pattern.search(report)
        if found:
            return header_safe(found.group(1).strip().lower(), max_length=254)
    return ""


def _cited_message_id(candidates: Iterable[str]) -> str:
    """The returned mail's Message-ID: the first one of ours among the candidates, else the first."""
    found = [c for c in candidates if c]
    return next((c for c in found if message_id_is_ours(c)), found[0] if found else "")


# --- Reply token and subject tag ----------------------------------------------

_TOKEN = re.compile(r"^[^+@\s]+\+([A-Za-z0-9_.=-]{1,100})@[^@\s]+$")


def _reply_token(addresses: list[str], own: frozenset[str]) -> str:
    own_domains = {a.partition("@")[2] for a in own}
    candidates = [(a, m.group(1)) for a in addresses if (m := _TOKEN.match(a))]
    for address, token in candidates:
        if _base_address(address) in own or address.partition("@")[2] in own_domains:
            return token
    return candidates[0][1] if candidates else ""


def _ticket_reference(subject: str) -> str | None:
    prefix = re.escape(_reference_prefix())
    found = re.search(rf"\[\s*({prefix}-\d{{1,12}})\s*\]", subject, re.IGNORECASE)
    return found.group(1).upper() if found else None


# --- The parse ----------------------------------------------------------------


MAX_CHARSET_HINTS = 5


def _charset_hints(msg: Message) -> tuple[str, ...]:
    """The legacy charsets the message declares: those of its parts, then of the
    encoded words in its main headers (ASCII and UTF-8 left out)."""
    labels: list[str] = []
    stack = [msg]
    seen = 0
    while stack and seen < 50:
        part = stack.pop(0)
        seen += 1
        labels.append(_param(part, "charset"))
        stack.extend(_children(part)[:10])
    for name in ("subject", "from", "to", "cc"):
        for value in _raw_values(msg, name):
            labels.extend(match.group(1).split("*", 1)[0] for match in _ENCODED_WORD.finditer(_FOLD.sub("", value)))
    hints: list[str] = []
    for label in labels:
        codec = _codec_for(label)
        if codec and codec not in ("ascii", "utf-8") and label not in hints:
            hints.append(label)
    return tuple(hints[:MAX_CHARSET_HINTS])


def _parse(raw: bytes, received_at: datetime | None) -> ParsedEmail:
    raw = bytes(raw or b"")
    limits = email_limits()
    _check_limits_before_parse(raw, limits)
    try:
        msg = BytesParser(policy=compat32).parsebytes(raw.replace(b"\x00", b""))
    except RecursionError:
        raise _Quarantine(f"MIME nesting deeper than {limits.max_depth}") from None
    _check_depth(msg, limits.max_depth)
    hints = _charset_hints(msg)
    own = own_addresses()

    senders = _addresses(msg, ["from"], hints) or _addresses(msg, ["sender"], hints)
    if not senders:
        raise _Quarantine("no sender address")
    sender_name, sender_address = senders[0]

    subject = header_safe(decode_header_text(_first(msg, "subject"), hints=hints), max_length=300)
    rfc_message_id = _message_id(msg)
    external_id = rfc_message_id[1:-1] if rfc_message_id else "sha256:" + hashlib.sha256(raw).hexdigest()

    keys: list[str] = []
    in_reply_to = [i for v in _raw_values(msg, "in-reply-to") for i in _message_ids(_FOLD.sub("", v))]
    references = [i for v in _raw_values(msg, "references") for i in _message_ids(_FOLD.sub("", v))]
    for key in in_reply_to + list(reversed(references)):
        # A Message-ID dressed as one of ours without a valid HMAC is forged.
        if key not in keys and key != rfc_message_id and not (looks_like_ours(key) and not message_id_is_ours(key)):
            keys.append(key)

    collected = _Collected(hints=hints)
    _walk(msg, collected)
    html = "\n".join(collected.html).replace("\x00", "").replace("\r\n", "\n")
    text = clean_text("\n".join(t for t in collected.text if t.strip())).rstrip().lstrip("\n")
    if not text.strip() and html:
        text = clean_text(html_to_text(html)).rstrip()

    recipients: list[str] = []
    for _, address in _addresses(msg, ["to", "cc"], hints):
        if address not in recipients:
            recipients.append(address)
    delivered = [a for _, a in _addresses(msg, ["delivered-to"], hints)]

    is_dsn = msg.get_content_type() == "multipart/report" and _param(msg, "report-type").lower() == "delivery-status"
    if not is_dsn and _is_plain_bounce(msg, sender_address, subject, text):
        is_dsn = True
        collected.dsn_recipient = _plain_bounce_recipient(text)
        collected.dsn_for = _cited_message_id(collected.enclosed_ids + _QUOTED_MESSAGE_ID.findall(text))
    elif is_dsn and not collected.dsn_for:
        collected.dsn_for = _cited_message_id(collected.enclosed_ids)
    metadata: dict[str, str] = {}
    token = _reply_token(recipients + delivered, own)
    if token:
        metadata["reply_token"] = token
    reason = _automatic_reason(msg, sender_address, own, is_dsn)
    if not is_dsn and _is_out_of_office(msg, subject):
        metadata["out_of_office"] = "1"
        reason = reason or "out-of-office"
    if reason:
        metadata["auto_reason"] = reason
    if is_dsn and collected.dsn_for:
        metadata["dsn_for"] = collected.dsn_for
    if is_dsn and collected.dsn_recipient:
        metadata["dsn_recipient"] = collected.dsn_recipient

    display_text = trim_quoted(text)
    inbound = InboundMessage(
        channel="email",
        external_id=external_id,
        sender=SenderIdentity("email", sender_address, sender_name),
        subject=subject,
        text=text,
        html=html,
        attachments=tuple(collected.attachments),
        ticket_reference=_ticket_reference(subject),
        reference_trusted=False,
        thread_keys=tuple(keys[:MAX_THREAD_KEYS]),
        received_at=received_at,
        rfc_message_id=rfc_message_id,
        recipients=tuple(recipients),
        is_automatic=bool(reason),
        metadata=metadata,
        reply_token=metadata.get("reply_token"),
        display_text=display_text,
    )
    return ParsedEmail(inbound=inbound, quarantine_reason=None, display_text=display_text)


__all__ = [
    "EmailLimits",
    "ParsedEmail",
    "decode_bytes",
    "decode_header_text",
    "email_limits",
    "html_to_text",
    "own_addresses",
    "parse_email",
    "trim_quoted",
]

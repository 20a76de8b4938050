"""Small text helpers shared by channels and services."""

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINEBREAKS = re.compile(r"[\r\n\u0085\u2028\u2029]+")


def header_safe(value: str, *, max_length: int = 200) -> str:
    """One line with no CR/LF, control characters or bidirectional overrides, fit for a mail header."""
    value = _LINEBREAKS.sub(" ", value or "")
    value = _BIDI.sub("", _CONTROL.sub("", value))
    return " ".join(value.split())[:max_length]


def clean_line(value: str, *, max_length: int = 200) -> str:
    """One line of display text (a subject, a customer's or organization's name), cleaned as file
    names are: no line breaks, control characters or bidirectional overrides (U+202A-U+202E,
    U+2066-U+2069, U+200E, U+200F) that could make it read differently from what it is."""
    return header_safe(value, max_length=max_length)


def clean_text(value: str) -> str:
    """Text without NUL and other control characters (tabs and newlines kept)."""
    return _CONTROL.sub("", (value or "").replace("\r\n", "\n").replace("\r", "\n"))


def clean_filename(name: str, *, default: str = "attachment") -> str:
    """A display name without path parts, bidi controls or control characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _BIDI.sub("", _CONTROL.sub("", _LINEBREAKS.sub("", name))).strip().lstrip(".")
    return name[:200] or default

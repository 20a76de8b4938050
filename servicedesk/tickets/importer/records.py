"""Parsing and validation of interaction-history records (shared/HISTORY_FORMAT.md).

Pure functions: a line of JSON in, a ``Record`` with typed values out, or a
``RecordError`` with the reason. Nothing here reads the database; references to
other records are checked when the record is applied.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from servicedesk.accounts.roles import ROLES
from servicedesk.tickets.statuses import Priority, Status

CHANNELS = ("email", "web", "chat", "forum", "phone")
INITIATORS = ("inbound", "outbound")
MESSAGE_TYPES = ("public_enduser", "public_agent", "internal", "system")
SESSION_CHANNELS = ("chat", "phone")
PRESENCE_STATES = ("ready", "not_ready", "offline")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TARGET_HOURS = ("business", "calendar")
MATCH_VALUES: dict[str, tuple[str, ...] | None] = {
    "priority": tuple(Priority.values),
    "channel": CHANNELS,
    "tier": None,
    "queue": None,
    "initiator": INITIATORS,
}
# The largest rank or number of minutes the database columns hold.
MAX_INTEGER = 2_147_483_647
_CLOCK = re.compile(r"^(\d{2}):(\d{2})$")
_AMOUNT = re.compile(r"^\d{1,10}(\.\d{1,2})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class RecordError(Exception):
    """A record that cannot be applied; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Record:
    kind: str
    values: dict[str, Any]
    # SHA-256 hex of "kind:id", or of the canonical JSON for kinds without an id.
    key: str = ""

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


Check = Callable[[str, Any], Any]


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RecordError(f"'{key}' must be a string")
    return value


def _ident(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"'{key}' must be a non-empty string")
    if len(value) > 180:
        raise RecordError(f"'{key}' is longer than 180 characters")
    return value


def _nonblank(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"'{key}' must be a non-empty string")
    return value


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RecordError(f"'{key}' must be true or false")
    return value


def _instant(key: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise RecordError(f"'{key}' must be an ISO 8601 instant with an offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"'{key}' is not an ISO 8601 instant: {value!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise RecordError(f"'{key}' has no UTC offset: {value!r}")
    return parsed.astimezone(UTC)


def _texts(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise RecordError(f"'{key}' must be a list of non-empty strings")
    return value


def _score(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise RecordError(f"'{key}' must be a whole number from 1 to 5")
    return value


def _one_of(*allowed: str) -> Check:
    def check(key: str, value: Any) -> str:
        if value not in allowed:
            raise RecordError(f"'{key}' must be one of {', '.join(allowed)}; got {value!r}")
        return value

    return check


def _optional_ident(key: str, value: Any) -> str | None:
    return None if value is None else _ident(key, value)


def _slug(key: str, value: Any) -> str:
    value = _ident(key, value)
    if len(value) > 100:
        raise RecordError(f"'{key}' is longer than 100 characters")
    return value


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _time_zone(key: str, value: Any) -> str:
    if not isinstance(value, str) or value not in _time_zones():
        raise RecordError(f"'{key}' is not an IANA time zone: {value!r}")
    return value


def _minute(key: str, value: Any) -> int:
    match = _CLOCK.match(value) if isinstance(value, str) else None
    minute = int(match.group(1)) * 60 + int(match.group(2)) if match else -1
    if match is None or int(match.group(2)) > 59 or minute > 24 * 60:
        raise RecordError(f"'{key}' times must be \"HH:MM\" from 00:00 to 24:00; got {value!r}")
    return minute


def _hours(key: str, value: Any) -> tuple[tuple[int, int, int], ...]:
    """Weekly opening windows as (weekday, start minute, end minute), Monday = 0."""
    if not isinstance(value, dict):
        raise RecordError(f"'{key}' must be an object of weekdays ({', '.join(WEEKDAYS)})")
    windows: set[tuple[int, int, int]] = set()
    for day, spans in value.items():
        if day not in WEEKDAYS:
            raise RecordError(f"'{key}' has an unknown weekday {day!r}; use {', '.join(WEEKDAYS)}")
        if not isinstance(spans, list):
            raise RecordError(f'\'{key}\' {day} must be a list of ["HH:MM", "HH:MM"] pairs')
        for span in spans:
            if not isinstance(span, list) or len(span) != 2:
                raise RecordError(f'\'{key}\' {day} must be a list of ["HH:MM", "HH:MM"] pairs')
            start, end = _minute(key, span[0]), _minute(key, span[1])
            if end <= start:
                raise RecordError(f"'{key}' {day} window {span[0]}-{span[1]} must end after it starts")
            windows.add((WEEKDAYS.index(day), start, end))
    return tuple(sorted(windows))


def _dates(key: str, value: Any) -> tuple[date, ...]:
    if not isinstance(value, list):
        raise RecordError(f"'{key}' must be a list of dates (YYYY-MM-DD)")
    days: set[date] = set()
    for item in value:
        try:
            if not isinstance(item, str) or len(item) != 10:
                raise ValueError
            days.add(date.fromisoformat(item))
        except ValueError:
            raise RecordError(f"'{key}' holds {item!r}, not a date (YYYY-MM-DD)") from None
    return tuple(sorted(days))


def _date(key: str, value: Any) -> date:
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise RecordError(f"'{key}' must be a date (YYYY-MM-DD); got {value!r}") from None


def _seconds(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INTEGER:
        raise RecordError(f"'{key}' must be a whole number of seconds, 0 or more")
    return value


def _amount(key: str, value: Any) -> Decimal:
    """A money amount as a string with at most two decimals ("850.00"), or a whole number."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _AMOUNT.match(value):
        raise RecordError(
            f"'{key}' must be an amount of 0 or more with at most 2 decimals, like \"850.00\"; got {value!r}"
        )
    return Decimal(value)


def _currency(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise RecordError(f"'{key}' must be a three-letter currency code in capitals, like \"EUR\"; got {value!r}")
    return value


def _rank(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INTEGER:
        raise RecordError(f"'{key}' must be a positive whole number")
    return value


def _match(key: str, value: Any) -> dict[str, str | list[str]]:
    if not isinstance(value, dict):
        raise RecordError(f"'{key}' must be an object")
    for fact, wanted in value.items():
        if fact not in MATCH_VALUES:
            raise RecordError(f"'{key}' has an unknown condition {fact!r}; use {', '.join(MATCH_VALUES)}")
        values = [wanted] if isinstance(wanted, str) else wanted
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise RecordError(f"'{key}' {fact} must be a non-empty string or a non-empty list of them")
        allowed = MATCH_VALUES[fact]
        bad = [v for v in values if allowed is not None and v not in allowed]
        if bad:
            raise RecordError(f"'{key}' {fact} must be among {', '.join(allowed or ())}; got {bad[0]!r}")
    return value


def _minutes(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INTEGER:
        raise RecordError(f"'{key}' must be a positive whole number of minutes or null")
    return value


_TARGET_KEYS = ("first_reply", "resolution", "hours")


def _targets(key: str, value: Any) -> dict[str, dict[str, Any]]:
    """Targets per priority: first_reply and resolution minutes (null or absent: no target) and hours."""
    if not isinstance(value, dict) or not value:
        raise RecordError(f"'{key}' must be an object of priorities ({', '.join(Priority.values)})")
    targets: dict[str, dict[str, Any]] = {}
    for priority, target in value.items():
        if priority not in Priority.values:
            raise RecordError(f"'{key}' has an unknown priority {priority!r}; use {', '.join(Priority.values)}")
        if not isinstance(target, dict):
            raise RecordError(f"'{key}' {priority} must be an object")
        unknown = sorted(set(target) - set(_TARGET_KEYS))
        if unknown:
            raise RecordError(f"'{key}' {priority} has unknown keys {', '.join(map(repr, unknown))}")
        if target.get("hours") not in TARGET_HOURS:
            raise RecordError(
                f"'{key}' {priority} 'hours' must be one of {', '.join(TARGET_HOURS)}; got {target.get('hours')!r}"
            )
        targets[priority] = {
            "first_reply": _minutes(f"{key}.{priority}.first_reply", target.get("first_reply")),
            "resolution": _minutes(f"{key}.{priority}.resolution", target.get("resolution")),
            "hours": target["hours"],
        }
    return targets


@dataclass(frozen=True)
class Schema:
    required: Mapping[str, Check]
    optional: Mapping[str, Check]


_STATUS = _one_of(*Status.values)
_PRIORITY = _one_of(*Priority.values)

SCHEMAS: dict[str, Schema] = {
    "agent": Schema(
        required={"id": _ident, "email": _nonblank, "role": _one_of(*ROLES)},
        optional={"name": _text},
    ),
    "customer": Schema(
        required={"id": _ident},
        optional={"name": _text, "emails": _texts, "phones": _texts, "organization": _nonblank, "tier": _nonblank},
    ),
    "ticket": Schema(
        required={"id": _ident, "at": _instant, "channel": _one_of(*CHANNELS), "customer": _ident, "subject": _text},
        optional={
            "initiator": _one_of(*INITIATORS),
            "agent": _ident,
            "topic": _ident,
            "priority": _PRIORITY,
            "queue": _ident,
            "same_issue_as": _ident,
            "spam": _flag,
            "deleted": _flag,
        },
    ),
    "message": Schema(
        required={"id": _ident, "ticket": _ident, "at": _instant, "type": _one_of(*MESSAGE_TYPES), "body": _nonblank},
        optional={"author": _ident, "status": _STATUS},
    ),
    "status": Schema(required={"ticket": _ident, "at": _instant, "status": _STATUS}, optional={"by": _ident}),
    "priority": Schema(required={"ticket": _ident, "at": _instant, "priority": _PRIORITY}, optional={}),
    "assign": Schema(required={"ticket": _ident, "at": _instant, "agent": _optional_ident}, optional={}),
    "merge": Schema(required={"ticket": _ident, "into": _ident, "at": _instant}, optional={}),
    "identity_merge": Schema(required={"from": _ident, "into": _ident, "at": _instant}, optional={}),
    "rating": Schema(required={"ticket": _ident, "at": _instant, "score": _score}, optional={"comment": _text}),
    "calendar": Schema(
        required={"id": _slug, "timezone": _time_zone, "hours": _hours},
        optional={"holidays": _dates, "default": _flag},
    ),
    "sla_policy": Schema(
        required={"id": _slug, "rank": _rank, "calendar": _slug, "targets": _targets},
        optional={"match": _match},
    ),
    "session": Schema(
        required={"id": _ident, "channel": _one_of(*SESSION_CHANNELS), "customer": _ident, "requested_at": _instant},
        optional={
            "ticket": _ident,
            "answered_at": _instant,
            "agent": _ident,
            "ended_at": _instant,
            "after_work_seconds": _seconds,
            "abandoned_at": _instant,
        },
    ),
    "presence": Schema(required={"agent": _ident, "at": _instant, "state": _one_of(*PRESENCE_STATES)}, optional={}),
    "cost": Schema(
        required={"period_start": _date, "period_end": _date, "amount": _amount, "currency": _currency},
        optional={},
    ),
}


def record_parse(line: str | bytes) -> Record:
    """Turn one line into a validated Record, or raise RecordError with the reason."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError("the line is not valid UTF-8") from None
    try:
        data = json.loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(data, dict):
        raise RecordError("a record must be a JSON object")
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise RecordError("missing 'kind'")
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise RecordError(f"unknown kind {kind!r}")
    unknown = sorted(set(data) - {"kind"} - set(schema.required) - set(schema.optional))
    if unknown:
        raise RecordError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for kind {kind!r}"
        )
    missing = [key for key in schema.required if key not in data]
    if missing:
        raise RecordError(
            f"missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} for kind {kind!r}"
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "kind":
            continue
        check = schema.required.get(key) or schema.optional[key]
        values[key] = check(key, value)
    _check_combinations(kind, values)
    return Record(kind=kind, values=values, key=record_key(kind, data))


def record_key(kind: str, data: dict[str, Any]) -> str:
    """The record's natural key: its kind and id, or all of it for kinds without an id."""
    if "id" in SCHEMAS[kind].required:
        text = f"{kind}:{data['id']}"
    else:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_combinations(kind: str, values: dict[str, Any]) -> None:
    if kind == "ticket":
        outbound = values.get("initiator") == "outbound"
        if outbound and "agent" not in values:
            raise RecordError("an outbound ticket needs 'agent' (who started it)")
        if not outbound and "agent" in values:
            raise RecordError("'agent' is only for outbound tickets")
    elif kind == "message":
        if values["type"] == "system" and "author" in values:
            raise RecordError("a system message has no 'author'")
        if values["type"] != "system" and "author" not in values:
            raise RecordError(f"a {values['type']} message needs 'author'")
    elif kind == "agent" and len(values["email"]) > 150:
        raise RecordError("'email' is longer than 150 characters")
    elif kind == "session":
        _check_session(values)
    elif kind == "cost" and values["period_end"] <= values["period_start"]:
        raise RecordError("'period_end' must be after 'period_start' (the period ends before period_end)")


def _check_session(values: dict[str, Any]) -> None:
    """An answered session has agent and end; an abandoned one has neither (HISTORY_FORMAT.md)."""
    requested = values["requested_at"]
    if "answered_at" in values and "abandoned_at" in values:
        raise RecordError("a session has 'answered_at' or 'abandoned_at', not both")
    if "abandoned_at" in values:
        extra = [key for key in ("agent", "ended_at", "after_work_seconds") if key in values]
        if extra:
            raise RecordError(f"an abandoned session has no {', '.join(map(repr, extra))}")
        if values["abandoned_at"] < requested:
            raise RecordError("'abandoned_at' is before 'requested_at'")
        return
    if "answered_at" not in values:
        raise RecordError("a session needs 'answered_at' (with 'agent' and 'ended_at') or 'abandoned_at'")
    missing = [key for key in ("agent", "ended_at") if key not in values]
    if missing:
        raise RecordError(f"an answered session needs {' and '.join(map(repr, missing))}")
    if values["answered_at"] < requested:
        raise RecordError("'answered_at' is before 'requested_at'")
    if values["ended_at"] < values["answered_at"]:
        raise RecordError("'ended_at' is before 'answered_at'")

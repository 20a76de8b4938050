"""``manage.py ingest_email --url URL``: the thin pipe. It hands each raw mail to
the running desk's ``POST /api/v1/inbound/email/`` (``api.py``), signed with the
shared secret, and starts no Django: ``manage.py`` runs it before Django loads,
so a mail server can pipe every message to it at little cost (as RT's
rt-mailgate does). The desk stores the mail through the same ``email_ingest``.

This module uses the standard library only (django-environ only to read a
``.env`` file when the secret is not given otherwise).

The secret, first found: ``--secret-file PATH`` (its first line),
``SD_INBOUND_EMAIL_SECRET`` in the environment, that variable in the project's
``.env`` file.

Exit status, as a mail server's pipe reads it (sysexits):

- 0: every mail is stored, a duplicate or quarantined (the desk answered 200);
- 75 (EX_TEMPFAIL, the mail server keeps the mail and tries again): the desk
  is unreachable or too slow, answers 5xx (503 while its database is down) or
  429, and also 401, 403, 404 and redirects, a configuration to fix (wrong or
  missing secret, endpoint off, wrong URL) while the mail waits;
- 1: the desk refused the mail itself (413 too large, any other 4xx), or a
  file could not be read.

One line per mail on stdout (``stored SD-1042``), reasons on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

EX_OK = 0
EX_FAILED = 1
EX_TEMPFAIL = 75
SIGNATURE_HEADER = "X-ServiceDesk-Signature"
SECRET_VARIABLE = "SD_INBOUND_EMAIL_SECRET"  # noqa: S105 (the name of the variable, not a secret)
DEFAULT_TIMEOUT = 60.0
PROJECT_ENV_FILE = Path(__file__).resolve().parents[2] / ".env"
# Answers that say "not now" or "not configured right": the mail must wait, not bounce.
RETRY_LATER_STATUSES = frozenset({401, 403, 404, 408, 429})


class TextOutput(Protocol):
    def write(self, text: str, /) -> object: ...


class MailgateConfigurationError(Exception):
    """The thin pipe cannot run as configured (no secret); the mail must wait."""


@dataclass(frozen=True)
class PostResult:
    exit_status: int
    line: str


def signature(body: bytes, secret: str) -> str:
    """The ``X-ServiceDesk-Signature`` value of ``body``, as ``api.signature_valid`` checks it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def secret_find(secret_file: str | None) -> str:
    """The shared secret (see the module's docstring); raises MailgateConfigurationError without one."""
    if secret_file:
        try:
            with open(secret_file, encoding="utf-8") as handle:
                secret = handle.readline().strip()
        except OSError as exc:
            raise MailgateConfigurationError(
                f"cannot read the secret file {secret_file}: {exc.strerror or exc}"
            ) from exc
        if not secret:
            raise MailgateConfigurationError(f"the secret file {secret_file} is empty")
        return secret
    secret = os.environ.get(SECRET_VARIABLE, "")
    if not secret and PROJECT_ENV_FILE.exists():
        import environ

        environ.Env.read_env(str(PROJECT_ENV_FILE))
        secret = os.environ.get(SECRET_VARIABLE, "")
    if not secret:
        raise MailgateConfigurationError(f"no secret: set {SECRET_VARIABLE} or pass --secret-file")
    return secret


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without the mail: report it instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def mail_post(raw: bytes, *, url: str, secret: str, timeout: float = DEFAULT_TIMEOUT) -> PostResult:
    """POST one raw mail to the desk; the exit status and the line to print. Never raises."""
    request = urllib.request.Request(  # noqa: S310 (the URL is the administrator's, http or https)
        url,
        data=raw,
        method="POST",
        headers={"Content-Type": "message/rfc822", SIGNATURE_HEADER: signature(raw, secret)},
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        return _refused(exc.code, exc.headers.get("Location"), _detail(exc))
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # URLError, refused or reset connections, timeouts, a broken answer, a URL that is none.
        reason = getattr(exc, "reason", None) or exc
        return PostResult(EX_TEMPFAIL, f"temporary failure, try again later: the desk is unreachable: {reason}")
    try:
        answer = json.loads(body)
        outcome = str(answer["outcome"])
    except (ValueError, KeyError, TypeError):
        return PostResult(EX_TEMPFAIL, "temporary failure, try again later: the desk gave an unexpected answer")
    detail = answer.get("reason") or answer.get("reference") or "-"
    return PostResult(EX_OK, f"{outcome} {detail}")


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["detail"])
    except Exception:
        return exc.reason if isinstance(exc.reason, str) else ""


def _refused(status: int, location: str | None, detail: str) -> PostResult:
    said = f"HTTP {status}" + (f" {detail}" if detail else "")
    if 300 <= status < 400:
        return PostResult(EX_TEMPFAIL, f"temporary failure, try again later: the URL redirects to {location}")
    if status >= 500 or status in RETRY_LATER_STATUSES:
        return PostResult(EX_TEMPFAIL, f"temporary failure, try again later: the desk answered {said}")
    return PostResult(EX_FAILED, f"refused by the desk: {said}")


def mails_post(
    files: list[str],
    *,
    url: str,
    secret_file: str | None,
    timeout: float,
    stdin: IO[bytes],
    stdout: TextOutput,
    stderr: TextOutput,
) -> int:
    """Post the mails in ``files`` (standard input when empty); the exit status (see the module's docstring)."""
    try:
        secret = secret_find(secret_file)
    except MailgateConfigurationError as exc:
        stderr.write(f"temporary failure, try again later: {exc}\n")
        return EX_TEMPFAIL
    failed = False
    for name in files or ["-"]:
        try:
            raw = stdin.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            stderr.write(f"{name}: cannot read: {exc.strerror or exc}\n")
            failed = True
            continue
        result = mail_post(raw, url=url, secret=secret, timeout=timeout)
        if result.exit_status == EX_OK:
            stdout.write(result.line + "\n")
            continue
        stderr.write(f"{name}: {result.line}\n")
        if result.exit_status == EX_TEMPFAIL:
            return EX_TEMPFAIL
        failed = True
    return EX_FAILED if failed else EX_OK


def options_add(parser: argparse.ArgumentParser) -> None:
    """The thin pipe's options, shared by ``main`` and the ``ingest_email`` command."""
    parser.add_argument(
        "--url",
        help="Hand the mail to the running desk at this URL (http://desk/api/v1/inbound/email/) "
        "instead of storing it from this process.",
    )
    parser.add_argument(
        "--secret-file", metavar="PATH", help=f"File holding the shared secret (else {SECRET_VARIABLE})."
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"Seconds to wait for the desk with --url (default {DEFAULT_TIMEOUT:.0f}).",
    )


def main(argv: list[str]) -> int | None:
    """``ingest_email`` arguments with ``--url``: post the mails and return the exit status.

    None when the arguments hold anything else: ``manage.py`` then runs the
    command through Django, which explains what is wrong.
    """
    parser = argparse.ArgumentParser(prog="manage.py ingest_email", add_help=False, exit_on_error=False)
    parser.add_argument("files", nargs="*")
    options_add(parser)
    try:
        options, unknown = parser.parse_known_args(argv)
    except argparse.ArgumentError:
        return None
    if unknown or options.url is None:
        return None
    return mails_post(
        options.files,
        url=options.url,
        secret_file=options.secret_file,
        timeout=options.timeout,
        stdin=sys.stdin.buffer,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )

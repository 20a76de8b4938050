"""One HTTP POST to an endpoint, safe against server-side request forgery.

The host is resolved once; every address it resolves to must be public
(``address_refusal``) unless the endpoint allows private addresses, and the
connection goes to that resolved address, so a DNS answer that changes
between the check and the connection (rebinding) cannot move it: the socket
connects to the checked socket address itself, nothing is looked up again.
Only http and https; redirects are never followed (a 3xx is a failed
attempt); connecting and each read time out after a few seconds, and the
whole request after ``TOTAL_TIMEOUT`` (well inside a delivery's claim, so an
endpoint that answers a byte at a time cannot hold it until another worker
sends it again); at most ``READ_CAP`` bytes of the answer are read. TLS
checks the certificate against the URL's host name.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
TOTAL_TIMEOUT = 20.0
READ_CAP = 4096
EXCERPT_MAX = 500
SCHEMES = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# NAT64's well-known prefix: the last 32 bits are the IPv4 address reached (RFC 6052).
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressRefused(Exception):
    """The URL may not be called: a scheme other than http(s), no host, or a private address."""


@dataclass(frozen=True)
class Response:
    status_code: int | None
    excerpt: str
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and not self.error


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to: IPv4-mapped (``::ffff:127.0.0.1``),
    6to4 (``2002:7f00:1::``) or NAT64 (``64:ff9b::7f00:1``); None for any other."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_text(address: IPAddress) -> str:
    """The address as people write it: an IPv4-mapped one as ``::ffff:127.0.0.1``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be called without "allow private addresses" (None: it may).

    An IPv6 address that carries an IPv4 one (``embedded_ipv4``) is judged
    as that IPv4 address.
    """
    address = embedded_ipv4(address) or address
    for flag, reason in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        # Before "private": Python counts 240.0.0.0/4 (reserved) as private too.
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(address, flag):
            return reason
    if not address.is_global:
        return "not public"
    return None


def url_check(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL; AddressRefused otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise AddressRefused(_("Only http and https addresses can receive webhooks."))
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError:
        raise AddressRefused(_("The address has an invalid port.")) from None
    host = parts.hostname or ""
    if not host:
        raise AddressRefused(_("The address has no host."))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, path


@dataclass(frozen=True)
class Resolved:
    """The address checked, and the socket address (family and tuple) connected to."""

    address: IPAddress
    family: int
    sockaddr: tuple[Any, ...]


def resolve(host: str, port: int, *, allow_private: bool) -> Resolved:
    """The one address to connect to: the host's first, after every one was checked."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise AddressRefused(_("The host name could not be resolved: %(error)s") % {"error": exc}) from None
    found = [
        Resolved(address=ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]), family=info[0], sockaddr=info[4])
        for info in infos
        if info[0] in (socket.AF_INET, socket.AF_INET6)
    ]
    if not found:
        raise AddressRefused(_("The host name could not be resolved."))
    if not allow_private:
        for resolved in found:
            reason = address_refusal(resolved.address)
            if reason is not None:
                raise AddressRefused(
                    _("%(address)s is a %(reason)s address; only public addresses receive webhooks.")
                    % {"address": address_text(resolved.address), "reason": reason}
                )
    return found[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a socket address resolved and checked beforehand (no second look-up); the Host
    header keeps the URL's name."""

    def __init__(self, host: str, port: int, *, resolved: Resolved) -> None:
        super().__init__(host, port, timeout=CONNECT_TIMEOUT)
        self._resolved = resolved

    def connect(self) -> None:
        sock = socket.socket(self._resolved.family, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(self._resolved.sockaddr)
            sock.settimeout(READ_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def connect(self) -> None:
        super().connect()
        context = ssl.create_default_context()
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)


def _cut_off(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """At ``TOTAL_TIMEOUT``: end the request wherever it is (a blocked read returns)."""
    cut.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def post(*, url: str, body: bytes, headers: dict[str, str], allow_private: bool) -> Response:
    """POST ``body`` to ``url``; never raises: a refusal or a failure is the response's ``error``."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        scheme, host, port, path = url_check(url)
        resolved = resolve(host, port, allow_private=allow_private)
    except AddressRefused as exc:
        return Response(status_code=None, excerpt="", error=str(exc)[:300], duration_ms=took())
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, resolved=resolved)
    cut = threading.Event()
    timer = threading.Timer(TOTAL_TIMEOUT, _cut_off, args=(connection, cut))
    timer.daemon = True
    timer.start()
    try:
        connection.request("POST", path, body=body, headers={**headers, "Content-Length": str(len(body))})
        answer = connection.getresponse()
        raw = answer.read(READ_CAP)
        status = answer.status
    except (OSError, http.client.HTTPException, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        if cut.is_set():
            error = _("No complete answer within the time limit (%(seconds)d s).") % {"seconds": TOTAL_TIMEOUT}
        return Response(status_code=None, excerpt="", error=error[:300], duration_ms=took())
    finally:
        timer.cancel()
        connection.close()
    excerpt = raw.decode("utf-8", errors="replace")[:EXCERPT_MAX]
    error = ""
    if 300 <= status < 400:
        error = _("Redirects are not followed (%(location)s).") % {
            "location": (answer.getheader("Location") or "")[:200]
        }
    elif not 200 <= status < 300:
        error = _("The endpoint answered %(status)d.") % {"status": status}
    return Response(status_code=status, excerpt=excerpt, error=error[:300], duration_ms=took())

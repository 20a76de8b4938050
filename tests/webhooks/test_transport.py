"""Server-side request forgery: which addresses a webhook may reach, and how the request is made."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from servicedesk.webhooks import transport


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "private"),
        ("192.168.1.20", "private"),
        ("172.16.5.5", "private"),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not public"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a00:1::1", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("64:ff9b::7f00:1", "loopback"),
    ],
)
def test_addresses_that_are_not_public_are_refused(address, reason):
    assert transport.address_refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address):
    assert transport.address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://10.0.0.1/hooks", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[::1]:8080/hooks", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/hooks", "::ffff:127.0.0.1 is a loopback address"),
    ],
)
def test_a_post_to_a_private_address_is_refused_before_connecting(url, shown, monkeypatch):
    def no_connection(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a refused address must not be connected to")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    monkeypatch.setattr(socket, "socket", no_connection)

    response = transport.post(url=url, body=b"{}", headers={}, allow_private=False)

    assert (response.status_code, response.ok) == (None, False)
    assert response.error.startswith(shown)


def test_a_host_name_that_resolves_to_loopback_is_refused(receiver):
    url = f"http://localhost:{receiver.port}/hooks"

    response = transport.post(url=url, body=b"{}", headers={}, allow_private=False)

    assert response.ok is False
    assert "loopback address" in response.error
    assert receiver.requests == []


def test_the_address_checked_is_the_address_connected_to(receiver, monkeypatch):
    """Resolved once: a second answer (DNS rebinding to an inner address) is never asked for."""
    answers = iter(
        [
            [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", receiver.port))],
            [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", receiver.port))],
        ]
    )
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(host)
        return next(answers)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    response = transport.post(
        url=f"http://hooks.example.test:{receiver.port}/hooks", body=b"{}", headers={}, allow_private=True
    )

    assert response.status_code == 200
    assert calls == ["hooks.example.test"]
    assert receiver.requests[0].headers["Host"] == f"hooks.example.test:{receiver.port}"


def test_a_name_with_one_private_address_among_public_ones_is_refused(monkeypatch):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443)),
        ],
    )

    response = transport.post(url="https://hooks.example.test/", body=b"{}", headers={}, allow_private=False)

    assert response.error.startswith("10.1.2.3 is a private address")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/", "http:///x"])
def test_only_http_and_https_urls_with_a_host_are_sent(url):
    response = transport.post(url=url, body=b"{}", headers={}, allow_private=True)

    assert response.ok is False
    assert response.error in (
        "Only http and https addresses can receive webhooks.",
        "The address has no host.",
    )


def test_with_private_addresses_allowed_the_receiver_gets_the_request(receiver):
    response = transport.post(url=receiver.url, body=b'{"a":1}', headers={"X-Test": "1"}, allow_private=True)

    assert (response.status_code, response.ok, response.excerpt, response.error) == (200, True, "ok", "")
    assert receiver.requests[0].body == b'{"a":1}'
    assert receiver.requests[0].headers["X-Test"] == "1"


def test_a_redirect_is_not_followed(receiver, other_receiver):
    receiver.answer(302, headers={"Location": other_receiver.url})

    response = transport.post(url=receiver.url, body=b"{}", headers={}, allow_private=True)

    assert (response.status_code, response.ok) == (302, False)
    assert response.error == f"Redirects are not followed ({other_receiver.url})."
    assert other_receiver.requests == []


def test_the_answer_is_read_up_to_its_cap_and_logged_as_an_excerpt(receiver):
    receiver.answer(500, body=b"x" * 100_000)

    response = transport.post(url=receiver.url, body=b"{}", headers={}, allow_private=True)

    assert (response.status_code, response.error) == (500, "The endpoint answered 500.")
    assert response.excerpt == "x" * transport.EXCERPT_MAX


def test_a_closed_port_is_an_error_not_an_exception():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    response = transport.post(url=f"http://127.0.0.1:{port}/", body=b"{}", headers={}, allow_private=True)

    assert response.status_code is None
    assert response.error.startswith("ConnectionRefusedError")


def test_an_endpoint_that_answers_a_byte_at_a_time_is_cut_off(monkeypatch):
    """Each read within its timeout, the whole answer not: the request ends at TOTAL_TIMEOUT."""
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        connection, _address = server.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                if stop.wait(0.3):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    monkeypatch.setattr(transport, "TOTAL_TIMEOUT", 1.0)
    started = time.monotonic()
    try:
        response = transport.post(url=f"http://127.0.0.1:{port}/", body=b"{}", headers={}, allow_private=True)
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()

    assert time.monotonic() - started < 3
    assert (response.status_code, response.ok) == (None, False)
    assert response.error == "No complete answer within the time limit (1 s)."

"""``python -m servicedesk.serve``: the web server (uvicorn, ASGI) with one or more worker processes.

Options: ``--host`` (127.0.0.1), ``--port`` (8000), ``--workers`` (the
environment's ``WEB_CONCURRENCY``, else 1), ``--proxy-headers`` (trust
X-Forwarded-For and -Proto from the proxy in front), ``--no-access-log``.

With several workers the processes share one listening socket that has
TCP_NODELAY set, which the connections it accepts inherit (Linux): a reply
leaves at once instead of waiting for the client's delayed ACK. uvicorn's own
``--workers`` binds a socket without it, and every keep-alive request then
waits about 40 ms (docs/performance.md, "Intake").

WebSockets are served without per-message compression: chat and workspace
frames are a few hundred bytes, and the compressor's state would cost each
open socket some 40 KiB (docs/performance.md, "Live chat"). Visitor tokens,
which a chat socket carries in its query string, are cut from every log line.

On PostgreSQL each worker keeps a pool of database connections
(``SD_DB_POOL``, on unless the environment says ``false``): a request borrows
one instead of opening its own, which costs a new server process each time.
Its statements start no parallel workers (``SD_DB_PARALLEL_WORKERS``, 0
unless the environment says otherwise): a request reads a page of rows, and
starting workers took longer than they saved (docs/performance.md, "Ticket
search and the inbox at 1,000,000 tickets").
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import re
import socket
from typing import Any

APPLICATION = "servicedesk.asgi:application"

_SECRET_QUERY = re.compile(r"((?:^|[?&])token=)[^&\s\"']*")


class SecretQueryRedaction(logging.Filter):
    """Cuts ``token=<value>`` (a chat visitor's key, in /ws/chat/?token=) from a log line's arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_QUERY.sub(r"\1[hidden]", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_QUERY.sub(r"\1[hidden]", record.msg)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with SecretQueryRedaction on its handlers (each worker process applies it)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["secret_query"] = {"()": "servicedesk.serve.SecretQueryRedaction"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("secret_query")
    return config


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket the worker processes accept on, with TCP_NODELAY for what they accept."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def server_environment_set() -> None:
    """The web server's defaults for the settings, read in every worker process (they inherit
    the environment); a value the environment gives wins."""
    os.environ.setdefault("SD_DB_POOL", "true")
    os.environ.setdefault("SD_DB_PARALLEL_WORKERS", "0")


def main(argv: list[str] | None = None) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    parser = argparse.ArgumentParser(prog="python -m servicedesk.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or 1))
    parser.add_argument("--proxy-headers", action="store_true")
    parser.add_argument("--no-access-log", action="store_true", help="Log no line per request.")
    options = parser.parse_args(argv)
    server_environment_set()
    config = uvicorn.Config(
        APPLICATION,
        host=options.host,
        port=options.port,
        workers=max(1, options.workers),
        lifespan="off",
        proxy_headers=options.proxy_headers,
        access_log=not options.no_access_log,
        log_config=log_config(),
        ws_per_message_deflate=False,
    )
    if config.workers == 1:
        # One process: asyncio sets TCP_NODELAY on the connections itself.
        uvicorn.Server(config).run()
        return
    Multiprocess(config, sockets=[listening_socket(options.host, options.port)]).run()


if __name__ == "__main__":
    main()

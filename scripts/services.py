"""Probe and prepare the PostgreSQL and Redis servers named by DATABASE_URL / REDIS_URL.

Used by ``scripts/services.sh``; runs with the project's virtualenv (psycopg,
redis and django-environ installed). Exit codes tell the shell what to do:

    0  the server answers (and, for ``postgres-createdb``, the database exists)
    2  nothing answers at that address: the caller may start a local server
    3  the server answers but refuses us (authentication, permissions)
    4  the URL is not for this kind of server

Usage:
    python scripts/services.py postgres-ping URL
    python scripts/services.py postgres-createdb URL
    python scripts/services.py redis-ping URL
    python scripts/services.py address URL     (prints "HOST PORT LOCAL", LOCAL is 1 for loopback)
"""

from __future__ import annotations

import sys

import environ

UNREACHABLE, REFUSED, WRONG_KIND = 2, 3, 4


def _postgres_config(url: str) -> dict:
    config = environ.Env.db_url_config(url)
    if "postgresql" not in config["ENGINE"]:
        print(f"Not a PostgreSQL URL: {url}", file=sys.stderr)
        raise SystemExit(WRONG_KIND)
    return config


def _postgres_connect(config: dict, dbname: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        dbname=dbname,
        user=config.get("USER") or None,
        password=config.get("PASSWORD") or None,
        host=config.get("HOST") or None,
        port=config.get("PORT") or None,
        connect_timeout=3,
        autocommit=True,
    )


def _postgres_error_code(exc: Exception) -> int:
    text = str(exc).lower()
    if "connection refused" in text or "could not connect" in text or "timeout" in text or "no such file" in text:
        return UNREACHABLE
    return REFUSED


def postgres_ping(url: str) -> int:
    """Connect to the server's maintenance database: the target may not exist yet."""
    import psycopg

    config = _postgres_config(url)
    try:
        with _postgres_connect(config, "postgres"):
            return 0
    except psycopg.OperationalError as exc:
        code = _postgres_error_code(exc)
        print(f"PostgreSQL at {config.get('HOST')}:{config.get('PORT') or 5432}: {exc}".strip(), file=sys.stderr)
        return code


def postgres_createdb(url: str) -> int:
    """Create the database of ``url`` when it is missing (the run script migrates into it)."""
    import psycopg
    from psycopg import sql

    config = _postgres_config(url)
    name = config["NAME"]
    try:
        with _postgres_connect(config, "postgres") as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"Created PostgreSQL database {name}.")
            return 0
    except psycopg.Error as exc:
        print(f"Could not prepare PostgreSQL database {name}: {exc}", file=sys.stderr)
        return _postgres_error_code(exc)


def redis_ping(url: str) -> int:
    import redis

    if not url.startswith(("redis://", "rediss://", "unix://")):
        print(f"Not a Redis URL: {url}", file=sys.stderr)
        return WRONG_KIND
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
        return 0
    except redis.AuthenticationError as exc:
        print(f"Redis at {url}: {exc}", file=sys.stderr)
        return REFUSED
    except redis.ConnectionError as exc:
        print(f"Redis at {url}: {exc}", file=sys.stderr)
        return UNREACHABLE
    except redis.RedisError as exc:
        print(f"Redis at {url}: {exc}", file=sys.stderr)
        return REFUSED


LOOPBACK = {"", "127.0.0.1", "localhost", "::1", "[::1]"}


def address(url: str) -> int:
    """Where a database or Redis URL points, so the shell knows whether it may start the server."""
    from urllib.parse import urlsplit

    if url.startswith("unix://"):
        print(f"{url[len('unix://') :]} 0 1")
        return 0
    parts = urlsplit(url)
    default_port = 6379 if parts.scheme.startswith("redis") else 5432
    host = parts.hostname or ""
    if parts.scheme.startswith("postgres") and not host:
        host = "localhost"  # a socket path or no host: the local server
    print(f"{host} {parts.port or default_port} {1 if host in LOOPBACK else 0}")
    return 0


COMMANDS = {
    "address": address,
    "postgres-ping": postgres_ping,
    "postgres-createdb": postgres_createdb,
    "redis-ping": redis_ping,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return WRONG_KIND
    return COMMANDS[argv[0]](argv[1])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

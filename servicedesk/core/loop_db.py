"""PostgreSQL from the web server's event loop: a small pool of async connections per loop.

Django's database work is synchronous: on the event loop it runs on a thread
(``live/threads.in_thread``), and every statement's wait then costs a thread
hop and a turn at the interpreter lock against the loop itself. A few hot
paths of the web server write with one statement that needs nothing of the
ORM at run time (the SQL made once, the values prepared by the model's own
fields): a phone event (``channels_app/phone/asgi.py``) and a visitor's chat
line (``channels_app/chat/loop_line.py``). They borrow a connection here and
await the statement on the loop.

The pool is made on first use by the loop that uses it, with the connection
settings of ``DATABASES["default"]`` and in autocommit (each statement is its
own transaction). Only PostgreSQL: ``loop_db_available()`` says whether the
default database is one. A loop that ends (a test's) leaves its pool behind;
``loop_db_close()`` closes the running loop's pool first.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from django.conf import settings

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
_opening: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def loop_db_available() -> bool:
    """Whether the default database can be reached from the loop (PostgreSQL)."""
    from django.db import connections

    return connections["default"].vendor == "postgresql"


async def _pool() -> Any:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is not None:
        return pool
    lock = _opening.setdefault(loop, asyncio.Lock())
    async with lock:
        pool = _pools.get(loop)
        if pool is None:
            from django.db import connections
            from psycopg import AsyncConnection
            from psycopg_pool import AsyncConnectionPool

            params = dict(connections["default"].get_connection_params())
            # Django's own cursor class and pool settings are for its connections, not these.
            params.pop("cursor_factory", None)
            params.pop("pool", None)
            params["autocommit"] = True
            pool = AsyncConnectionPool(
                kwargs=params,
                connection_class=AsyncConnection,
                min_size=1,
                max_size=int(settings.SERVICEDESK.get("LOOP_DB_CONNECTIONS", 4)),
                timeout=5.0,
                open=False,
                name="event-loop",
            )
            await pool.open(wait=False)
            _pools[loop] = pool
    return pool


@asynccontextmanager
async def loop_connection() -> AsyncIterator[Any]:
    """A connection of the running loop's pool (a ``psycopg.AsyncConnection`` in autocommit).

    Raises ``psycopg_pool.PoolTimeout`` when none is free within 5 s and
    ``psycopg.OperationalError`` when the database cannot be reached; a
    connection the database closed is dropped by the pool, not lent again.
    """
    pool = await _pool()
    async with pool.connection() as connection:
        yield connection


async def loop_db_close() -> None:
    """Close the running loop's pool, if it has one (tests, before their loop ends)."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()

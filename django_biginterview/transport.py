"""Deadlines for the client's calls, and the watchdog that enforces them: a timer thread
that shuts the socket of a response still trickling in when its attempt's time is up,
reaching it through the connection pools of ``WatchedAdapter``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.poolmanager import pool_classes_by_scheme as default_pool_classes


@dataclass(frozen=True)
class Deadline:
    """When a call must be over (on the monotonic clock), and the budget it came from."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        """Seconds left; zero or less once the deadline has passed."""
        return self.at - time.monotonic()


#: Taken whenever a connection changes hands or a watchdog fires, so a watchdog can never
#: cut a connection that another request has checked out meanwhile.
_WATCH_LOCK = threading.Lock()
#: Connections checked out of a pool by an attempt that has a watchdog, and that watchdog.
_WATCHED: weakref.WeakKeyDictionary[_WatchedHTTPConnection, Watchdog] = weakref.WeakKeyDictionary()
#: The watchdog of the attempt the current thread is making, if any.
_current = threading.local()


class Watchdog:
    """Shuts down the socket of an attempt's connection when the attempt's time is up.

    Read timeouts apply to each socket read, so a server that sends a byte at a time
    never trips them; a second thread with a timer is what bounds the wall-clock time
    (urllib3's documentation recommends exactly that). The watchdog only reaches the
    connections its own thread checked out of the pool and has not returned: the pools
    below hand connections over under ``_WATCH_LOCK``, and once the attempt is over
    (``__exit__``) the watchdog never fires.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._over = False
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        _current.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with _WATCH_LOCK:
            self._over = True
        _current.watchdog = None

    def _fire(self) -> None:
        with _WATCH_LOCK:
            if self._over:
                return
            self.fired = True
            for connection, owner in list(_WATCHED.items()):
                sock = connection.watched_socket if owner is self else None
                if sock is not None:
                    # The plain socket's shutdown, also under TLS: it wakes the blocked
                    # read in the attempt's thread, which then fails like a dropped
                    # connection; urllib3 discards the connection.
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedHTTPConnection(HTTPConnection):
    """A connection that remembers its socket: with ``Connection: close`` http.client
    drops the socket from the connection while the body is still read from it, and the
    watchdog must reach it then too."""

    watched_socket: socket.socket | None = None

    def connect(self) -> None:
        super().connect()
        self.watched_socket = self.sock


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """The same, over TLS."""


def _checked_out(connection: Any) -> Any:
    watchdog = getattr(_current, "watchdog", None)
    with _WATCH_LOCK:
        if watchdog is None:
            _WATCHED.pop(connection, None)
        else:
            _WATCHED[connection] = watchdog
    return connection


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    """A pool that tells ``Watchdog`` which connection an attempt is using, and when the
    connection is back in the pool (and so no longer the attempt's)."""

    ConnectionCls = _WatchedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        return _checked_out(super()._get_conn(timeout))

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            with _WATCH_LOCK:
                _WATCHED.pop(conn, None)
        super()._put_conn(conn)


class _WatchedHTTPSConnectionPool(_WatchedHTTPConnectionPool, HTTPSConnectionPool):
    """The same, over TLS."""

    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOL_CLASSES = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class WatchedAdapter(HTTPAdapter):
    """requests' adapter with the watched pools, direct and through an HTTP(S) proxy (a
    SOCKS proxy brings its own pools and keeps them: timeouts alone bound it)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is default_pool_classes:
            manager.pool_classes_by_scheme = _WATCHED_POOL_CLASSES
        return manager

"""Coordination between worker processes: a lock with a TTL, a shared request rate
limiter, and "at most one pending" markers.

The state lives in Redis at ``BIGINTERVIEW["REDIS_URL"]``, so it holds across every worker
process and machine. Without ``REDIS_URL`` Django's default cache is used instead: that
is shared only when the cache itself is (Redis or Memcached); with the default
``LocMemCache`` every process has its own lock, limiter and markers.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
from datetime import timedelta
from typing import Any

from django.core.cache import cache

from .conf import app_settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "biginterview:"

#: After a Redis failure, the rate limiter limits per process for this many seconds.
REDIS_RETRY_AFTER = 30

# Compare-and-delete: only the holder of the token releases the lock.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# Reserve the next free request slot and return how long (microseconds) the caller must
# wait for it. Redis' own clock is used, so workers on several machines agree on "now".
# Numbers are formatted explicitly: Lua's default conversion keeps only 14 digits.
_RESERVE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, next_free)
local ttl_ms = math.ceil((slot + interval - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', slot + interval), 'PX', ttl_ms)
return string.format('%.0f', slot - now)
"""


@functools.lru_cache(maxsize=4)
def _redis_for(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def redis_client() -> Any | None:
    """The Redis client for ``BIGINTERVIEW["REDIS_URL"]``, or ``None`` when it is unset."""
    url = app_settings.REDIS_URL
    return _redis_for(str(url)) if url else None


def _seconds(ttl: timedelta) -> float:
    return max(0.001, ttl.total_seconds())


# --- Locks ------------------------------------------------------------------------------


def acquire_lock(name: str, token: str, ttl: timedelta) -> bool:
    """Take the lock ``name`` for ``token`` unless someone holds it; it expires after
    ``ttl`` so a crashed holder cannot block the next run forever."""
    key = f"{KEY_PREFIX}lock:{name}"
    client = redis_client()
    if client is not None:
        return bool(client.set(key, token, nx=True, px=math.ceil(_seconds(ttl) * 1000)))
    return bool(cache.add(key, token, timeout=_seconds(ttl)))


def release_lock(name: str, token: str) -> bool:
    """Release ``name`` if ``token`` still holds it (a lock that expired and was taken by
    someone else stays theirs). On the cache fallback the check and the delete are two
    steps, which is good enough for a lock whose TTL is measured in hours."""
    key = f"{KEY_PREFIX}lock:{name}"
    client = redis_client()
    if client is not None:
        return bool(client.eval(_RELEASE_SCRIPT, 1, key, token))
    if cache.get(key) == token:
        cache.delete(key)
        return True
    return False


def lock_holder(name: str) -> str | None:
    """The token holding ``name``, or ``None`` when it is free."""
    key = f"{KEY_PREFIX}lock:{name}"
    client = redis_client()
    if client is not None:
        value = client.get(key)
        return value.decode() if isinstance(value, bytes) else value
    value = cache.get(key)
    return None if value is None else str(value)


# --- "At most one pending" markers ------------------------------------------------------


def claim_pending(name: str, ttl: timedelta) -> bool:
    """Mark ``name`` pending; ``False`` if it already was. The TTL bounds the damage of a
    lost message: after it, the work can be scheduled again."""
    return acquire_lock(f"pending:{name}", "1", ttl)


def clear_pending(name: str) -> None:
    """Forget that ``name`` is pending (the work started, or could not be enqueued)."""
    key = f"{KEY_PREFIX}lock:pending:{name}"
    client = redis_client()
    if client is not None:
        client.delete(key)
    else:
        cache.delete(key)


# --- Rate limiting ----------------------------------------------------------------------


class RateLimiter:
    """Blocks each caller until it may send one request, ``rate`` requests per second in
    all, across every process sharing the store.

    With Redis, each call reserves the next free slot (one every ``1/rate`` seconds) in one
    atomic script and sleeps until it; the combined rate therefore never exceeds ``rate``,
    whatever the number of workers. If Redis is unreachable the limiter falls back to a
    per-process limit (and logs it) rather than stopping the sync. Without Redis it counts
    requests per window in Django's cache.
    """

    def __init__(self, rate: float, *, scope: str = "api", redis: Any | None = None) -> None:
        self.rate = float(rate)
        self.scope = scope
        self.key = f"{KEY_PREFIX}ratelimit:{scope}"
        self._redis = redis
        self._script: Any = None
        self._redis_down_until = 0.0
        self._local_lock = threading.Lock()
        self._local_next = 0.0

    def __repr__(self) -> str:
        return f"<RateLimiter rate={self.rate}/s scope={self.scope!r}>"

    def __call__(self) -> None:
        if self.rate <= 0:
            return
        if self._redis is not None:
            if time.monotonic() < self._redis_down_until:
                wait = self._reserve_local()
            else:
                try:
                    wait = self._reserve_redis()
                except Exception as exc:  # any Redis failure: keep working
                    logger.warning(
                        "Rate limiter store unreachable (%s); limiting this process only for %d s",
                        type(exc).__name__,
                        REDIS_RETRY_AFTER,
                    )
                    # Do not pay a connection timeout on every request meanwhile.
                    self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER
                    wait = self._reserve_local()
        else:
            self._wait_cache_window()
            return
        if wait > 0:
            time.sleep(wait)

    def _reserve_redis(self) -> float:
        assert self._redis is not None
        if self._script is None:
            # EVALSHA after the first call: the script is not re-sent with every request.
            self._script = self._redis.register_script(_RESERVE_SCRIPT)
        interval_us = max(1, round(1_000_000 / self.rate))
        waited = self._script(keys=[self.key], args=[interval_us])
        return int(waited) / 1_000_000

    def _reserve_local(self) -> float:
        with self._local_lock:
            now = time.monotonic()
            slot = max(now, self._local_next)
            self._local_next = slot + 1.0 / self.rate
            return slot - now

    def _wait_cache_window(self) -> None:
        window = max(1.0, 1.0 / self.rate)
        limit = max(1, int(self.rate * window))
        while True:
            now = time.time()
            index = int(now // window)
            key = f"{self.key}:{index}"
            cache.add(key, 0, timeout=math.ceil(window) + 1)
            try:
                count = cache.incr(key)
            except ValueError:  # the window's key expired between add and incr
                continue
            if count <= limit:
                return
            time.sleep(max(0.0, (index + 1) * window - now))


def rate_limiter() -> RateLimiter:
    """The limiter for ``BIGINTERVIEW["RATE_LIMIT"]`` towards the configured organisation
    (one budget per ``BASE_URL``, shared by every worker using the same store)."""
    scope = hashlib.sha256(app_settings.BASE_URL.encode()).hexdigest()[:16]
    return RateLimiter(float(app_settings.RATE_LIMIT or 0), scope=scope, redis=redis_client())

"""Coordination between worker processes: leases (locks with a TTL their holder renews),
shared request rate limiters (background and interactive shares of ``RATE_LIMIT``),
quotas, "at most one pending" markers and delivery counters.

The state lives in Redis at ``BIGINTERVIEW["REDIS_URL"]``, so it holds across every worker
process and machine. Without ``REDIS_URL`` Django's default cache is used instead: that
is shared only when the cache itself is (Redis or Memcached); with the default
``LocMemCache`` every process has its own lock, limiter and markers.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.cache import cache

from .conf import app_settings, cleared_on_setting_change

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

# Renew: only the holder of the token extends the lease, and never shortens it.
_RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
    end
    return 1
end
return 0
"""

# Reserve the next ARGV[3] (default 1) free request slots, one after another, and return
# how long (microseconds) the caller must wait for the first; when that is longer than
# ARGV[2] (if not negative), reserve nothing and return the wait negated. Redis' own clock
# is used, so workers on several machines agree on "now". Numbers are formatted
# explicitly: Lua's default conversion keeps only 14 digits.
_RESERVE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, next_free)
if max_wait >= 0 and slot - now > max_wait then
    return string.format('%.0f', now - slot)
end
local count = tonumber(ARGV[3] or '1')
local ttl_ms = math.ceil((slot + count * interval - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', slot + count * interval), 'PX', ttl_ms)
return string.format('%.0f', slot - now)
"""


@cleared_on_setting_change(maxsize=4)
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


def renew_lock(name: str, token: str, ttl: timedelta) -> bool:
    """Keep ``name`` held by ``token`` for at least ``ttl`` from now (a lease's sign of
    life); ``False`` if ``token`` no longer holds it. On the cache fallback the check and
    the renewal are two steps, and the new TTL replaces the old one."""
    key = f"{KEY_PREFIX}lock:{name}"
    client = redis_client()
    if client is not None:
        return bool(client.eval(_RENEW_SCRIPT, 1, key, token, math.ceil(_seconds(ttl) * 1000)))
    if cache.get(key) != token:
        return False
    return bool(cache.touch(key, timeout=_seconds(ttl)))


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


def _read(key: str) -> str | None:
    """The text stored at ``key``, from Redis or the cache; ``None`` if there is none."""
    client = redis_client()
    if client is not None:
        value = client.get(key)
        return value.decode() if isinstance(value, bytes) else value
    value = cache.get(key)
    return None if value is None else str(value)


def lock_holder(name: str) -> str | None:
    """The token holding ``name``, or ``None`` when it is free."""
    return _read(f"{KEY_PREFIX}lock:{name}")


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


# --- Delivery counters -----------------------------------------------------------------


def count_delivery(name: str, ttl: timedelta) -> int:
    """Count one more delivery of the message ``name`` and return the count so far.

    A message that is delivered again after its worker died keeps its name, so the count
    tells a redelivery (2, 3, ...) from a first delivery (1).
    """
    key = f"{KEY_PREFIX}deliveries:{name}"
    client = redis_client()
    if client is not None:
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.pexpire(key, math.ceil(_seconds(ttl) * 1000))
        count, _ = pipe.execute()
        return int(count)
    cache.add(key, 0, timeout=_seconds(ttl))
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=_seconds(ttl))
        return 1


def remember(name: str, value: str, ttl: timedelta) -> None:
    """Store a short note under ``name`` (what a task is working on right now)."""
    key = f"{KEY_PREFIX}note:{name}"
    client = redis_client()
    if client is not None:
        client.set(key, value, px=math.ceil(_seconds(ttl) * 1000))
    else:
        cache.set(key, value, timeout=_seconds(ttl))


def recall(name: str) -> str | None:
    """The note stored under ``name``, or ``None``."""
    return _read(f"{KEY_PREFIX}note:{name}")


# --- In-flight sets ---------------------------------------------------------------------


def mark_in_flight(name: str, members: list[int], ttl: timedelta) -> bool:
    """Add ``members`` to the set ``name`` (work started that may never finish); ``False``
    when there is no shared store to hold it (``REDIS_URL`` unset)."""
    client = redis_client()
    if client is None:
        return False
    if members:
        key = f"{KEY_PREFIX}in-flight:{name}"
        pipe = client.pipeline()
        pipe.sadd(key, *members)
        pipe.pexpire(key, math.ceil(_seconds(ttl) * 1000))
        pipe.execute()
    return True


def clear_in_flight(name: str, members: list[int]) -> None:
    """Remove ``members`` from the set ``name`` (their work finished)."""
    client = redis_client()
    if client is not None and members:
        client.srem(f"{KEY_PREFIX}in-flight:{name}", *members)


def find_in_flight(name: str, members: list[int]) -> set[int] | None:
    """Those of ``members`` still in the set ``name``; ``None`` without a shared store."""
    client = redis_client()
    if client is None:
        return None
    if not members:
        return set()
    flags = client.smismember(f"{KEY_PREFIX}in-flight:{name}", members)
    return {member for member, flag in zip(members, flags, strict=True) if flag}


# --- Rate limiting ----------------------------------------------------------------------


class Throttled(Exception):
    """The next request slot is further away than the caller agreed to wait: hand the
    work back (to the broker, with a countdown) instead of holding a worker meanwhile."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"rate limited: next request slot in {wait:.1f} s")
        self.wait = wait


class RateLimiter:
    """Blocks each caller until it may send one request, ``rate`` requests per second in
    all, across every process sharing the store.

    With Redis, each call reserves the next free slot (one every ``1/rate`` seconds) in one
    atomic script and sleeps until it; the combined rate therefore never exceeds ``rate``,
    whatever the number of workers. With ``max_wait``, a slot further away than that is
    not reserved: the call raises :class:`Throttled` with the wait instead of sleeping.
    If Redis is unreachable the limiter falls back to a per-process limit (and logs it)
    rather than stopping the sync. Without Redis it counts requests per window in
    Django's cache.
    """

    def __init__(
        self,
        rate: float,
        *,
        scope: str = "api",
        redis: Any | None = None,
        max_wait: float | None = None,
    ) -> None:
        self.rate = float(rate)
        self.max_wait = max_wait
        self.scope = scope
        self.key = f"{KEY_PREFIX}ratelimit:{scope}"
        self._redis = redis
        self._script: Any = None
        self._redis_down_until = 0.0
        self._local_lock = threading.Lock()
        self._local_next = 0.0
        self._prepaid = threading.local()

    def __repr__(self) -> str:
        return f"<RateLimiter rate={self.rate}/s scope={self.scope!r}>"

    def __call__(self) -> None:
        if getattr(self._prepaid, "count", 0) > 0:  # its slot was reserved in advance
            self._prepaid.count -= 1
            return
        if self.rate <= 0:
            return
        if self._redis is None:
            self._wait_cache_window()
            return
        [wait] = self.reserve(1)
        if wait > 0:
            time.sleep(wait)

    def reserve(self, count: int, *, bounded: bool = True) -> list[float]:
        """Reserve ``count`` consecutive request slots at once and return how long to
        wait for each, without waiting; raises :class:`Throttled` (reserving nothing)
        when the first is further away than ``max_wait``, unless ``bounded`` is false
        (slots however far away, for work that will come back for them later).
        Reserving the slots of calls sent together means none of them is sent only to
        find its sibling held back. Without Redis (counting windows in the cache), it
        waits for each slot itself."""
        if self.rate <= 0:
            return [0.0] * count
        if self._redis is None:
            for _ in range(count):
                self._wait_cache_window()
            return [0.0] * count
        max_wait = self.max_wait if bounded else None
        if time.monotonic() < self._redis_down_until:
            first = self._reserve_local(count, max_wait)
        else:
            try:
                first = self._reserve_redis(count, max_wait)
            except Throttled:
                raise
            except Exception as exc:  # any Redis failure: keep working
                logger.warning(
                    "Rate limiter store unreachable (%s); limiting this process only for %d s",
                    type(exc).__name__,
                    REDIS_RETRY_AFTER,
                )
                # Do not pay a connection timeout on every request meanwhile.
                self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER
                first = self._reserve_local(count, max_wait)
        return [first + n / self.rate for n in range(count)]

    @contextlib.contextmanager
    def prepaid(self) -> Iterator[None]:
        """Within the block, this thread's next request takes no slot: one was reserved
        for it with :meth:`reserve` (and waited for)."""
        self._prepaid.count = 1
        try:
            yield
        finally:
            self._prepaid.count = 0

    def _reserve_redis(self, count: int = 1, max_wait: float | None = None) -> float:
        assert self._redis is not None
        if self._script is None:
            # EVALSHA after the first call: the script is not re-sent with every request.
            self._script = self._redis.register_script(_RESERVE_SCRIPT)
        interval_us = max(1, round(1_000_000 / self.rate))
        max_wait_us = -1 if max_wait is None else round(max_wait * 1_000_000)
        waited = int(self._script(keys=[self.key], args=[interval_us, max_wait_us, count]))
        if waited < 0:
            raise Throttled(-waited / 1_000_000)
        return waited / 1_000_000

    def _reserve_local(self, count: int = 1, max_wait: float | None = None) -> float:
        with self._local_lock:
            now = time.monotonic()
            slot = max(now, self._local_next)
            if max_wait is not None and slot - now > max_wait:
                raise Throttled(slot - now)
            self._local_next = slot + count / self.rate
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
            wait = max(0.0, (index + 1) * window - now)
            if self.max_wait is not None and wait > self.max_wait:
                raise Throttled(wait)
            time.sleep(wait)


def organisation_scope() -> str:
    """The configured organisation (``BASE_URL``) as a short hash: the scope of its
    limiters and quotas, which shows no URL in the store's keys."""
    return hashlib.sha256(app_settings.BASE_URL.encode()).hexdigest()[:16]


def interactive_rate() -> float:
    """Requests per second kept for interactive calls (a practice click): the
    ``INTERACTIVE_RATE_SHARE`` of ``RATE_LIMIT``. 0 when ``RATE_LIMIT`` is 0 (no limit)."""
    return app_settings.RATE_LIMIT * app_settings.INTERACTIVE_RATE_SHARE


def background_rate() -> float:
    """Requests per second left for background work (the syncs): ``RATE_LIMIT`` less the
    interactive share, so the two together never exceed ``RATE_LIMIT``."""
    return app_settings.RATE_LIMIT * (1 - app_settings.INTERACTIVE_RATE_SHARE)


def rate_limiter(*, max_wait: float | None = None) -> RateLimiter:
    """The limiter of background work towards the configured organisation: its share of
    ``BIGINTERVIEW["RATE_LIMIT"]`` (:func:`background_rate`), one budget per ``BASE_URL``
    shared by every worker using the same store."""
    return RateLimiter(
        background_rate(),
        scope=organisation_scope(),
        redis=redis_client(),
        max_wait=max_wait,
    )


def interactive_rate_limiter(*, max_wait: float) -> RateLimiter:
    """The limiter of interactive calls: their share of ``RATE_LIMIT``
    (:func:`interactive_rate`), in a scope of its own, so a click never waits for a slot
    behind a running "sync all". ``max_wait`` is required: a visitor is waiting."""
    return RateLimiter(
        interactive_rate(),
        scope=f"{organisation_scope()}:interactive",
        redis=redis_client(),
        max_wait=max_wait,
    )


# --- Quotas -----------------------------------------------------------------------------

# Count one use of every quota (KEYS[i]: at most ARGV[2i-1] uses per ARGV[2i] ms), or of
# none when one is used up: then return its position and the milliseconds until its
# window ends. A window starts with its first use and ends with its key's expiry.
_QUOTAS_SCRIPT = """
for i, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[2 * i - 1]) then
        return {i, redis.call('PTTL', key)}
    end
end
for i, key in ipairs(KEYS) do
    if redis.call('INCR', key) == 1 then
        redis.call('PEXPIRE', key, ARGV[2 * i])
    end
end
return {0, 0}
"""


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` uses of ``name`` per ``window``; a window starts with its first
    use (so a burst at a window's end and another at the next one's start are both let
    through: a quota caps volume, the rate limiter caps pace)."""

    name: str
    limit: int
    window: timedelta


class QuotaExceeded(Throttled):
    """A quota is used up; ``wait`` is the seconds until its window ends."""

    def __init__(self, quota: Quota, wait: float) -> None:
        super().__init__(wait)
        self.quota = quota

    def __str__(self) -> str:
        return (
            f"quota {self.quota.name!r} used up ({self.quota.limit} per {self.quota.window}); "
            f"next use in {self.wait:.0f} s"
        )


def use_quotas(quotas: Sequence[Quota]) -> None:
    """Count one use of each of ``quotas``, all or none: if one is used up, nothing is
    counted and :class:`QuotaExceeded` names the first such quota.

    With Redis this is one atomic script. On the cache fallback the check and the counts
    are separate steps, so simultaneous callers may pass a limit by a few, and the wait
    reported is the whole window (the cache cannot say when a key expires). A store that
    is down raises its own error: the caller decides whether to go on without quotas.
    """
    keys = [f"{KEY_PREFIX}quota:{quota.name}" for quota in quotas]
    client = redis_client()
    if client is not None:
        args: list[int] = []
        for quota in quotas:
            args += [int(quota.limit), math.ceil(_seconds(quota.window) * 1000)]
        refused, wait_ms = client.eval(_QUOTAS_SCRIPT, len(keys), *keys, *args)
        if refused:
            raise QuotaExceeded(quotas[refused - 1], max(0, int(wait_ms)) / 1000)
        return
    for quota, key in zip(quotas, keys, strict=True):
        if int(cache.get(key) or 0) >= quota.limit:
            raise QuotaExceeded(quota, _seconds(quota.window))
    for quota, key in zip(quotas, keys, strict=True):
        if not cache.add(key, 1, timeout=_seconds(quota.window)):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=_seconds(quota.window))

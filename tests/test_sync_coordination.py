"""``coordination.py``: the lock, the pending markers and the rate limiter, on real Redis
and on the Django-cache fallback (``REDIS_URL`` unset)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import redis

from django_biginterview import coordination

TTL = timedelta(minutes=1)


@pytest.fixture
def cache_only(settings):
    """No REDIS_URL: the documented per-process fallback on Django's (LocMem) cache."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "REDIS_URL": None}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(params=["redis", "cache"])
def store(request):
    if request.param == "redis":
        request.getfixturevalue("clean_redis")
        assert coordination.redis_client() is not None
    else:
        request.getfixturevalue("cache_only")
        assert coordination.redis_client() is None
    return request.param


def test_a_lock_has_one_holder_and_only_the_holder_releases_it(store) -> None:
    assert coordination.acquire_lock("job", "a", TTL)
    assert not coordination.acquire_lock("job", "b", TTL)
    assert coordination.lock_holder("job") == "a"

    assert not coordination.release_lock("job", "b")
    assert coordination.lock_holder("job") == "a"
    assert coordination.release_lock("job", "a")
    assert coordination.lock_holder("job") is None
    assert coordination.acquire_lock("job", "b", TTL)


def test_a_lock_expires_after_its_ttl(clean_redis) -> None:
    assert coordination.acquire_lock("short", "a", timedelta(seconds=30))
    ttl_ms = coordination.redis_client().pttl("biginterview:lock:short")
    assert 0 < ttl_ms <= 30_000


def test_pending_markers_deduplicate_until_cleared(store) -> None:
    assert coordination.claim_pending("sync-account:1", TTL)
    assert not coordination.claim_pending("sync-account:1", TTL)
    assert coordination.claim_pending("sync-account:2", TTL)
    coordination.clear_pending("sync-account:1")
    assert coordination.claim_pending("sync-account:1", TTL)


def test_redis_limiter_hands_out_one_slot_per_interval(clean_redis) -> None:
    client = coordination.redis_client()
    limiter = coordination.RateLimiter(10, scope="t", redis=client)
    slots = []
    for _ in range(5):
        limiter._reserve_redis()
        slots.append(int(client.get(limiter.key)))
    # Every reservation moves the next free slot exactly 1/rate further (100 ms in µs),
    # whoever asks: that is what bounds the combined rate of all workers.
    assert [b - a for a, b in itertools.pairwise(slots)] == [100_000] * 4
    waits = [limiter._reserve_redis() for _ in range(3)]
    assert waits == sorted(waits) and waits[-1] > waits[0]


def test_a_limiter_with_max_wait_hands_a_far_slot_back_without_taking_it(clean_redis) -> None:
    client = coordination.redis_client()
    patient = coordination.RateLimiter(2, scope="mw", redis=client)
    hasty = coordination.RateLimiter(2, scope="mw", redis=client, max_wait=0.6)
    for _ in range(3):  # the next free slot is now 1.5 s away
        patient._reserve_redis()
    next_free = int(client.get(patient.key))

    with pytest.raises(coordination.Throttled) as refused:
        hasty()

    assert 1.0 < refused.value.wait <= 1.5
    assert int(client.get(patient.key)) == next_free  # nothing was reserved


def test_the_local_fallback_hands_a_far_slot_back_too() -> None:
    limiter = coordination.RateLimiter(1, scope="local", max_wait=0.5)
    limiter._reserve_local(1, limiter.max_wait)
    with pytest.raises(coordination.Throttled):
        limiter._reserve_local(1, limiter.max_wait)


def test_two_limiters_share_the_budget(clean_redis) -> None:
    client = coordination.redis_client()
    first = coordination.RateLimiter(5, scope="shared", redis=client)
    second = coordination.RateLimiter(5, scope="shared", redis=client)
    first._reserve_redis()
    after_first = int(client.get(first.key))
    second._reserve_redis()
    assert int(client.get(first.key)) - after_first == 200_000


def test_unreachable_redis_falls_back_to_a_local_limit(caplog) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    limiter = coordination.RateLimiter(1000, scope="dead", redis=dead)
    limiter()
    limiter()
    limiter()
    assert caplog.text.count("limiting this process only") == 1  # then no retry for a while
    assert limiter._local_next > 0


def test_cache_limiter_allows_rate_per_window_then_waits(cache_only, monkeypatch) -> None:
    clock = {"now": 1000.2}
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 3))
        clock["now"] += seconds

    monkeypatch.setattr(coordination.time, "time", lambda: clock["now"])
    monkeypatch.setattr(coordination.time, "sleep", sleep)
    limiter = coordination.RateLimiter(2, scope="c")

    limiter()
    limiter()
    assert sleeps == []
    limiter()  # third in the same second: waits for the next window
    assert sleeps == [0.8]


def test_zero_rate_means_unlimited(clean_redis) -> None:
    limiter = coordination.RateLimiter(0, scope="off", redis=coordination.redis_client())
    limiter()
    assert coordination.redis_client().get(limiter.key) is None


def test_rate_limiter_follows_settings(settings, clean_redis) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "RATE_LIMIT": 3.5}
    limiter = coordination.rate_limiter()
    # The background share: INTERACTIVE_RATE_SHARE (0.25) is kept for practice clicks.
    assert limiter.rate == pytest.approx(3.5 * 0.75) and limiter._redis is not None
    assert "acme" not in limiter.key  # scoped by a hash of BASE_URL, not the URL itself

"""The byte-budget LRU with per-key futures."""

import threading
import time

import pytest

from dvface_plugin.engine.cache import WindowCache


def test_lru_evicts_least_recently_used_within_the_byte_budget():
    cache = WindowCache(300)
    for key in "abc":
        cache.get_or_compute(key, lambda key=key: (key.upper(), 100))
    cache.get_or_compute("a", lambda: pytest.fail("a is cached"))  # a becomes most recent
    cache.get_or_compute("d", lambda: ("D", 100))  # evicts b, the least recently used
    assert "b" not in cache and all(k in cache for k in "acd")
    stats = cache.stats()
    assert (stats.bytes_held, stats.entries, stats.evictions) == (300, 3, 1)
    assert (stats.windows_computed, stats.hits, stats.misses) == (4, 1, 4)


def test_value_larger_than_the_budget_is_returned_but_not_kept():
    cache = WindowCache(50)
    cache.get_or_compute("small", lambda: ("s", 40))
    assert cache.get_or_compute("big", lambda: ("B", 60)) == "B"
    assert "big" not in cache and "small" in cache
    assert cache.stats().bytes_held == 40


def test_concurrent_requests_compute_a_key_once():
    cache = WindowCache(1000)
    calls = []
    barrier = threading.Barrier(8)
    results = []

    def compute():
        calls.append(1)
        time.sleep(0.2)
        return object(), 10

    def worker():
        barrier.wait()
        results.append(cache.get_or_compute("k", compute))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len({id(r) for r in results}) == 1 and len(results) == 8
    assert cache.stats().hits == 7


def test_failure_reaches_every_waiter_and_leaves_no_entry():
    cache = WindowCache(1000)
    started = threading.Event()
    errors = []

    def failing():
        started.set()
        time.sleep(0.2)
        raise RuntimeError("boom")

    def owner():
        try:
            cache.get_or_compute("k", failing)
        except RuntimeError as exc:
            errors.append(exc)

    def waiter():
        started.wait()
        try:
            cache.get_or_compute("k", lambda: pytest.fail("must wait on the failing computation"))
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=owner)] + [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 4 and all(str(e) == "boom" for e in errors)
    assert "k" not in cache and cache.stats().bytes_held == 0
    assert cache.get_or_compute("k", lambda: ("ok", 1)) == "ok"


def test_prior_lookups_are_counted_apart_from_windows():
    cache = WindowCache(100)
    cache.get_or_compute("p", lambda: ("P", 1), kind="prior")
    cache.get_or_compute("p", lambda: ("P", 1), kind="prior")
    stats = cache.stats()
    assert (stats.priors_computed, stats.prior_hits, stats.windows_computed, stats.hits) == (1, 1, 0, 0)
    with pytest.raises(ValueError):
        cache.get_or_compute("x", lambda: ("X", 1), kind="other")

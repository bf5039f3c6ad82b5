"""Glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE) against redis-server: random patterns over
a small alphabet full of the special bytes, checked key by key, and patterns whose stars
made the old matcher exponential."""
import random
import time

import redis

ALPHABET = "ab*?[]^-\\"
KEYS = ["", "a", "b", "ab", "ba", "aab", "abab", "a*b", "a?b", "[a]", "a-b", "^a", "\\a", "a\\", "]", "-",
        "aaaaaaab", "bbbbbba", "a[b", "a]b", "abc", "ABab"]


def test_random_patterns_match_as_redis_server_matches(make_server, redis_server):
    berth = make_server("--shards", "2").client(decode_responses=True)
    for c in (berth, redis_server):
        c.flushall()
        c.mset({k or "_empty_never_matched": "1" for k in KEYS})
    rng = random.Random(7)
    differences = []
    for _ in range(3000):
        pattern = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 7)))
        ours, theirs = sorted(berth.keys(pattern)), sorted(redis_server.keys(pattern))
        if ours != theirs:
            differences.append((pattern, ours, theirs))
    assert differences == []


def test_pathological_patterns_answer_at_once(make_server, redis_server):
    server = make_server("--shards", "2")
    c = server.client(decode_responses=True, socket_timeout=20)
    key = "a" * 40
    c.set(key, "1")
    redis_server.set(key, "1")
    other = server.client(decode_responses=True)
    for pattern in ["a*" * 20 + "b", "*a" * 30 + "*b", "a*a*a*a*a*a*a*a*a*a*a*a*[b]", "?*" * 25 + "b",
                    "a*" * 20 + "a"]:
        started = time.monotonic()
        assert c.keys(pattern) == redis_server.keys(pattern)
        elapsed = time.monotonic() - started
        assert other.ping()
        # Not a timing threshold: the old matcher took over ten seconds here; the socket timeout
        # above is what would end a hang.
        print(f"{pattern[:20]}...: {elapsed * 1000:.1f} ms")
    assert [k for k in c.scan_iter(match="a*" * 20 + "b")] == []
    p = c.pubsub()
    p.psubscribe("a*" * 20 + "b")
    assert c.publish(key, "x") == 0
    p.close()


def test_patterns_past_redis_star_limit_answer_as_redis(make_server, redis_server):
    """Redis gives up (no match) past 1000 stars with string left; the answers agree."""
    berth = make_server("--shards", "2").client(decode_responses=True)
    for c in (berth, redis_server):
        c.flushall()
        c.set("a" * 50000, "1")
        c.set("a" * 999, "1")
    for pattern in ["*?" * 50000, "*a" * 999, "*a" * 1000, "*a" * 1001, "*?" * 1000 + "*", "*?" * 1001 + "*"]:
        assert sorted(berth.keys(pattern)) == sorted(redis_server.keys(pattern))

"""MEMORY USAGE/STATS/DOCTOR/PURGE/MALLOC-STATS and ROLE over real sockets; their errors
and ROLE's reply as redis-server gives them."""
import pytest

from parity import Wire


def test_usage_follows_the_size_of_the_value(make_server):
    c = make_server("--shards", 2).client(decode_responses=True)
    assert c.memory_usage("missing") is None
    c.set("small", "v")
    c.set("big", "x" * 10_000)
    assert c.memory_usage("big") > c.memory_usage("small") + 10_000
    c.rpush("short", *range(10))
    c.rpush("long", *range(1000))
    assert c.memory_usage("long") > c.memory_usage("short") + 990 * 16
    # Sampling all elements of a uniform list gives the same figure as the default sample.
    assert c.memory_usage("long", samples=0) == c.memory_usage("long")
    c.rpush("mixed", "a", "b", "c", "d", "e", "y" * 5000)
    assert c.memory_usage("mixed", samples=0) > c.memory_usage("mixed")  # the long one only when sampled
    assert c.memory_usage("mixed", samples=0) > 5000
    for key, fill in (("h", lambda: c.hset("h", mapping={"f%d" % i: i for i in range(100)})),
                      ("s", lambda: c.sadd("s", *range(100))), ("z", lambda: c.zadd("z", {"m%d" % i: i for i in range(100)})),
                      ("x", lambda: [c.xadd("x", {"f": i}) for i in range(100)])):
        fill()
        # A hash of 100 short fields and a sorted set of 100 short members are packed (a
        # length byte and the bytes of each field and value, a byte or two of each small
        # score, as Redis's listpack); the others hold a slot of 16 bytes or more each.
        assert c.memory_usage(key) > 100 * {"h": 6, "z": 4}.get(key, 16), key
    c.close()


def test_stats_doctor_purge_and_allocator_report(make_server):
    c = make_server("--shards", 2).client(decode_responses=True)
    for i in range(1000):
        c.set("key:%d" % i, i)
    stats = c.memory_stats()
    assert stats["keys.count"] == 1000
    assert stats["total.allocated"] >= stats["startup.allocated"] > 0
    assert stats["peak.allocated"] >= stats["total.allocated"]
    used = c.info("memory")["used_memory"]
    assert abs(stats["total.allocated"] - used) < used // 2
    assert c.execute_command("MEMORY", "DOCTOR").startswith("Berth memory report")
    assert c.memory_purge() is True
    # The allocator's own report, as redis-server's built with jemalloc gives it.
    assert c.info("memory")["mem_allocator"] == "jemalloc-5.3.0"
    assert "Begin jemalloc statistics" in c.execute_command("MEMORY", "MALLOC-STATS")
    assert c.get("key:999") == "999"
    c.close()


def test_errors_help_and_role_match_redis_server(make_server, redis_server):
    ours = Wire(make_server("--shards", 2).port)
    theirs = Wire(redis_server.connection_pool.connection_kwargs["port"])
    for w in (ours, theirs):
        w.call("RPUSH", "l", "a")
    for args in (("MEMORY", "USAGE", "l", "SAMPLES", "-1"), ("MEMORY", "USAGE", "l", "SAMPLES", "x"),
                 ("MEMORY", "USAGE", "l", "FOO"), ("MEMORY", "USAGE", "l", "SAMPLES"), ("MEMORY", "USAGE"),
                 ("MEMORY", "FOO"), ("MEMORY",), ("MEMORY", "HELP"), ("MEMORY", "PURGE"), ("MEMORY", "USAGE", "nokey"),
                 ("ROLE",), ("ROLE", "x")):
        assert ours.call(*args) == theirs.call(*args), args
    ours.close()
    theirs.close()


def test_debug_populate_as_redis_server(make_server):
    """DEBUG POPULATE, which memory measurements and Valkey's tests use to fill a
    database: same keys, values, padding, skipping and errors as redis-server 7.0 (started
    with DEBUG enabled, which it refuses by default)."""
    import contextlib
    import redis as redispy
    from conftest import reference_server
    berth = make_server("--shards", 2).client(decode_responses=True)
    with contextlib.contextmanager(reference_server)("redis-server", "--enable-debug-command", "yes") as ref:
        for c in (berth, ref):
            c.set("key:5", "mine")
            w = c.pipeline(transaction=True)
            w.watch("key:7")
            assert c.execute_command("DEBUG", "POPULATE", "1000") in ("OK", True)
            w.multi()
            w.get("key:7")
            with pytest.raises(redispy.WatchError):  # the populated key touched the WATCH
                w.execute()
            c.execute_command("DEBUG", "POPULATE", "10", "p", "20")
            c.execute_command("DEBUG", "POPULATE", "3", "q", "3")
        for c in (berth, ref):
            assert c.dbsize() == 1013
            assert c.get("key:5") == "mine" and c.get("key:999") == "value:999"
            assert c.get("p:3") == "value:3" + "\0" * 13 and c.get("q:2") == "val"
        for args in (["-1"], ["abc"], ["5", "p", "-3"]):
            errors = []
            for c in (berth, ref):
                with pytest.raises(redispy.ResponseError) as e:
                    c.execute_command("DEBUG", "POPULATE", *args)
                errors.append(str(e.value))
            assert errors[0] == errors[1], (args, errors)
    in_db1 = make_server("--shards", 2).client(db=1)
    in_db1.execute_command("DEBUG", "POPULATE", "50")
    assert in_db1.dbsize() == 50 and in_db1.get("key:49") == b"value:49"

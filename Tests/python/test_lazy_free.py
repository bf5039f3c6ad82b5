"""Lazy freeing over real sockets, beside redis-server 7.0: UNLINK, FLUSHALL/FLUSHDB
ASYNC and the lazyfree-lazy-* settings free large values (more than 64 elements) on a
thread of their own, counted in INFO memory's lazyfreed_objects exactly as redis-server counts
them; small values are freed at once; nothing else changes for clients."""
import time

from conftest import wait_for


def lazyfreed(c):
    return c.info("memory")["lazyfreed_objects"]


def big(c, key, kind="set"):
    """Values whose freeing redis-server 7.0 counts as more than 64 steps, in its
    encodings: a hashtable set, a list of more than 64 quicklist nodes, a hashtable hash
    (values past hash-max-listpack-value), a skiplist sorted set."""
    members = [f"m{i}" for i in range(200)]
    if kind == "set":
        c.sadd(key, *members)
    elif kind == "list":
        c.rpush(key, *["x" * 200] * 3000)
    elif kind == "hash":
        c.hset(key, mapping={m: "v" * 100 for m in members[:100]})
    elif kind == "zset":
        c.zadd(key, {m: i for i, m in enumerate(members)})


def scenario(c):
    """Returns lazyfreed_objects after each step."""
    counts = []

    def step():
        assert wait_for(lambda: c.info("memory")["lazyfree_pending_objects"] == 0)
        counts.append(lazyfreed(c))
    for kind in ("set", "list", "hash", "zset"):
        big(c, "k:" + kind, kind)
    c.set("small", "v")
    c.sadd("smallset", *range(10))
    c.hset("packed", mapping={f"f{i}": i for i in range(100)})  # one buffer: at once
    assert c.unlink("k:set", "small", "smallset", "packed", "missing") == 4
    step()  # the big set only
    assert c.delete("k:list") == 1
    step()  # DEL frees at once by default
    c.config_set("lazyfree-lazy-user-del", "yes")
    assert c.delete("k:list", "k:hash") == 1
    step()
    c.config_set("lazyfree-lazy-server-del", "yes")
    c.set("k:zset", "overwritten")
    big(c, "k:renamed")
    c.rename("k:renamed", "k:zset")  # the string goes, small: at once
    big(c, "k:old")
    c.rename("k:zset", "k:old")  # the big set RENAME overwrote goes lazily
    step()
    c.config_set("lazyfree-lazy-expire", "yes")
    big(c, "k:ttl", "hash")
    c.pexpire("k:ttl", 30)
    assert wait_for(lambda: c.exists("k:ttl") == 0)
    step()
    for i in range(5):
        big(c, f"k:flush:{i}")
    c.flushall(asynchronous=True)
    assert c.dbsize() == 0
    c.set("after", "flush")
    assert c.get("after") == "flush"
    step()
    return counts


def test_lazy_free_counts_as_redis_server_does(make_server, redis_server):
    berth = make_server("--shards", 2).client(decode_responses=True)
    ours = scenario(berth)
    theirs = scenario(redis_server)
    assert ours == theirs


def test_lazy_eviction_keeps_memory_bounded(make_server):
    server = make_server("--shards", 2, "--maxmemory", "8mb", "--maxmemory-policy", "allkeys-lru",
                         "--lazyfree-lazy-eviction", "yes")
    c = server.client(decode_responses=True)
    p = c.pipeline(transaction=False)
    for i in range(400):  # ~32 MB of 200-element sets
        p.sadd(f"set:{i}", *[f"{i}:{j:040d}" for j in range(200)])
        if i % 20 == 19:
            p.execute()
    p.execute()
    assert wait_for(lambda: c.info("memory")["lazyfree_pending_objects"] == 0)
    time.sleep(0.3)  # a tick or two finishes a round the lazy frees interrupted
    info = c.info()
    assert info["evicted_keys"] > 0 and info["lazyfreed_objects"] > 0
    assert info["used_memory"] < 8 * 1024 * 1024 * 1.05, info["used_memory"]
    assert c.dbsize() < 400

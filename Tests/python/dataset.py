"""Datasets for the persistence tests: one of every type and encoding, written the same
way into any server, and a dump of a whole keyspace to compare two servers by."""
import redis


def fill(r, prefix="", big=True):
    """Writes keys of every type into databases 0 and 3 of `r`: small and large
    collections (the sizes at which Redis changes encoding), integers of every width,
    long compressible and incompressible strings, binary keys, TTLs, a stream with
    deleted entries, consumer groups, pending entries and several consumers."""
    p = prefix
    r.execute_command("SELECT", 0)
    r.set(p + "str", "hello")
    for i, n in enumerate([0, 7, -1, 127, 128, -129, 32767, 40000, -2**31, 2**31, 2**63 - 1, -2**63]):
        r.set(f"{p}int:{i}", n)
    r.set(p + "not-int", "007")
    r.set(p + "compressible", "abc" * 1000)
    r.set(p + "random", bytes(range(256)) * 4)
    r.set(p.encode() + b"bin\x00\xff\r\nkey", b"\x00\x01\x02")
    r.set(p + "empty", "")
    r.rpush(p + "list:small", "a", "b", 1, 2, -3, "c" * 100)
    r.rpush(p + "list:big", *[f"item-{i}" for i in range(1000 if big else 200)])
    r.sadd(p + "set:ints", 1, 2, 3, -5, 70000, 2**40)
    r.sadd(p + "set:small", "x", "y", "z")
    r.sadd(p + "set:big", *[f"m{i}" for i in range(600 if big else 200)])
    r.hset(p + "hash:small", mapping={"f1": "v1", "f2": 2, "f3": "x" * 70})
    r.hset(p + "hash:big", mapping={f"field{i}": f"value{i}" for i in range(300)})
    r.zadd(p + "zset:small", {"a": 1.5, "b": -2, "c": 0, "d": float("inf"), "e": 3.141592653589793})
    r.zadd(p + "zset:big", {f"z{i}": i / 7 for i in range(400)})
    for i in range(1, 260):
        r.xadd(p + "stream", {"a": i, "b": "x" * (i % 5)} if i % 3 else {"other": i}, id=f"{i}-{i % 4}")
    r.xdel(p + "stream", "5-1", "6-2")
    r.xgroup_create(p + "stream", "g1", id="0")
    r.xgroup_create(p + "stream", "g2", id="100-0")
    r.xreadgroup("g1", "alice", {p + "stream": ">"}, count=3)
    r.xreadgroup("g1", "bob", {p + "stream": ">"}, count=2)
    r.xreadgroup("g2", "carol", {p + "stream": ">"}, count=1)
    r.xack(p + "stream", "g1", "1-1")
    r.xadd(p + "stream:empty", {"f": "v"}, id="1-1")
    r.xdel(p + "stream:empty", "1-1")
    r.set(p + "ttl", "v", px=3_600_000)
    r.hset(p + "ttl:hash", "f", "v")
    r.pexpireat(p + "ttl:hash", 4_102_444_800_000)
    r.execute_command("SELECT", 3)
    r.set(p + "in3", "three")
    r.lpush(p + "list3", "x")
    r.execute_command("SELECT", 0)


def dump(port):
    """Every key of every database: type, value and absolute expiry."""
    # Binary keys and values survive decoding as surrogates.
    r = redis.Redis(port=port, decode_responses=True, encoding_errors="surrogateescape")
    out = {}
    for db in range(16):
        r.execute_command("SELECT", db)
        for k in r.scan_iter(count=1000):
            kind = r.type(k)
            if kind == "string":
                value = r.get(k)
            elif kind == "list":
                value = r.lrange(k, 0, -1)
            elif kind == "hash":
                value = sorted(r.hgetall(k).items())
            elif kind == "set":
                value = sorted(r.smembers(k))
            elif kind == "zset":
                value = r.zrange(k, 0, -1, withscores=True)
            elif kind == "stream":
                groups = [{f: g[f] for f in ("name", "consumers", "pending", "last-delivered-id")}
                          for g in r.xinfo_groups(k)]
                # Each pending entry: its consumer and delivery count (the idle time is
                # the moment of the dump; the delivery time itself is compared below).
                pel = [[(e["message_id"], e["consumer"], e["times_delivered"])
                        for e in r.xpending_range(k, g["name"], "-", "+", 10000)] for g in groups]
                consumers = [sorted((c["name"], c["pending"]) for c in r.xinfo_consumers(k, g["name"])) for g in groups]
                full = r.xinfo_stream(k, full=True)
                times = [sorted((e[0], e[2]) for e in grp["pending"]) for grp in full["groups"]]
                value = (r.xrange(k), groups, pel, consumers, times)
            else:
                value = None
            out[(db, k)] = (kind, value, r.execute_command("PEXPIRETIME", k))
    return out

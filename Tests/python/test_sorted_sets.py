"""Sorted sets over real sockets. The main test sends one random stream of sorted-set
commands (ranges, ranks, pops, ZUNION/ZINTER/ZDIFF and their STORE forms, ZRANGESTORE) to
Berth and to redis-server, and every reply must match; the sets grow to thousands of
members, so Berth's B+tree splits, shares and merges nodes under inner nodes. Then
ZRANDMEMBER's properties, and STORE commands waking a client blocked on their destination."""
import random
import threading

import pytest
import redis

from conftest import wait_for


def normalise(reply):
    # Redis 7.0 prints doubles with 17 significant digits, 7.2+ and Berth the shortest
    # form that reads back the same: compare the numbers, not their spelling.
    if isinstance(reply, list):
        return [normalise(e) for e in reply]
    if isinstance(reply, bytes):
        try:
            return float("%.12g" % float(reply))
        except ValueError:
            return reply
    return reply


def run(client, args):
    try:
        return normalise(client.execute_command(*args))
    except redis.ResponseError as e:
        return ("error", str(e))


def random_commands(rnd, count, members):
    def member():
        return "m%d" % rnd.randrange(members)

    def score():
        if rnd.random() < 0.05:
            return rnd.choice(["-inf", "+inf", rnd.random() * 1000])
        return rnd.randrange(200) / 2  # many ties, so members break them

    def bound():
        return rnd.choice(["-inf", "+inf", str(rnd.randrange(-5, 110)), "(%d" % rnd.randrange(-5, 110)])

    def lex():
        return rnd.choice(["-", "+", "[m%d" % rnd.randrange(members), "(m%d" % rnd.randrange(members)])

    def limit():
        return ["LIMIT", rnd.randrange(5), rnd.randrange(-1, 20)] if rnd.random() < 0.5 else []

    for _ in range(count):
        key = "z%d" % rnd.randrange(2)
        r = rnd.random()
        if r < 0.50:
            args = ["ZADD", key] + rnd.choice([[], ["NX"], ["XX"], ["GT"], ["LT"], ["CH"]])
            for _ in range(rnd.randrange(1, 6)):
                args += [score(), member()]
        elif r < 0.55:
            args = ["ZINCRBY", key, rnd.randrange(-20, 20), member()]
        elif r < 0.60:
            args = ["ZREM", key] + [member() for _ in range(rnd.randrange(1, 5))]
        elif r < 0.64:
            args = ["ZRANGE", key, rnd.randrange(-50, 50), rnd.randrange(-50, 3000), "WITHSCORES"]
            args += ["REV"] if rnd.random() < 0.3 else []
        elif r < 0.68:
            args = ["ZRANGEBYSCORE", key, bound(), bound(), "WITHSCORES"] + limit()
        elif r < 0.70:
            args = ["ZREVRANGEBYSCORE", key, bound(), bound()] + limit()
        elif r < 0.75:
            args = [rnd.choice(["ZRANK", "ZREVRANK"]), key, member()]
        elif r < 0.78:
            args = ["ZCOUNT", key, bound(), bound()]
        elif r < 0.80:
            args = [rnd.choice(["ZPOPMIN", "ZPOPMAX"]), key, rnd.randrange(1, 4)]
        elif r < 0.81:
            start = rnd.randrange(-100, 100)
            args = ["ZREMRANGEBYRANK", key, start, start + rnd.randrange(4)]
        elif r < 0.82:
            low = rnd.randrange(0, 100)
            args = ["ZREMRANGEBYSCORE", key, low, low + 0.5]
        elif r < 0.86:
            args = ["ZADD", "lex", 0, member()]
        elif r < 0.90:
            args = [rnd.choice(["ZRANGEBYLEX", "ZREVRANGEBYLEX"]), "lex", lex(), lex()] + limit()
        elif r < 0.92:
            args = ["ZLEXCOUNT", "lex", lex(), lex()]
        elif r < 0.925:
            args = ["ZREMRANGEBYLEX", "lex", lex(), lex()]
        elif r < 0.94:
            args = ["ZSCORE", key, member()]
        elif r < 0.95:
            args = ["ZMSCORE", key, member(), member()]
        elif r < 0.96:
            args = ["SADD", "s0", member()]
        elif r < 0.985:
            args = algebra(rnd)
        else:
            args = ["ZRANGESTORE", rnd.choice(["d0", "d1"]), key, bound(), bound(), "BYSCORE"] + limit()
            args += ["REV"] if rnd.random() < 0.3 else []
        yield args


def algebra(rnd):
    """ZUNION/ZINTER/ZDIFF, their STORE forms and ZINTERCARD over sorted sets, a plain set
    and a missing key, sometimes storing into one of their own inputs."""
    keys = [rnd.choice(["z0", "z1", "s0", "missing", "d0"]) for _ in range(rnd.randrange(1, 4))]
    op = rnd.choice(["ZUNION", "ZINTER", "ZDIFF", "ZINTERCARD"])
    store = op != "ZINTERCARD" and rnd.random() < 0.5
    if store:
        args = [op + "STORE", rnd.choice(["d0", "d1", "d1", "z1"]), len(keys)] + keys
    else:
        args = [op, len(keys)] + keys
    if op in ("ZUNION", "ZINTER"):
        if rnd.random() < 0.5:
            args += ["WEIGHTS"] + [rnd.choice([1, 2, -1, 0.5, 0, "inf"]) for _ in keys]
        if rnd.random() < 0.5:
            args += ["AGGREGATE", rnd.choice(["SUM", "MIN", "MAX"])]
    if op == "ZINTERCARD" and rnd.random() < 0.5:
        args += ["LIMIT", rnd.randrange(0, 50)]
    if not store and op != "ZINTERCARD" and rnd.random() < 0.7:
        args += ["WITHSCORES"]
    return args


@pytest.mark.parametrize("shards", [1, 2])
def test_random_sorted_set_commands_match_redis_server(make_server, redis_server, shards):
    ours = make_server("--shards", shards).client()
    theirs = redis.Redis(port=redis_server.connection_pool.connection_kwargs["port"])
    rnd = random.Random(shards)
    differences = []
    for args in random_commands(rnd, 12000, 6000):
        mine, reference = run(ours, args), run(theirs, args)
        if mine != reference:
            differences.append((args, mine, reference))
    assert differences[:3] == []
    for key in ["z0", "z1", "lex", "d0", "d1"]:
        assert run(ours, ["ZRANGE", key, 0, -1, "WITHSCORES"]) == run(theirs, ["ZRANGE", key, 0, -1, "WITHSCORES"])
    # Big enough that the tree has inner nodes under its root (a leaf holds 64).
    assert theirs.zcard("z0") > 2000


def test_zrandmember(make_server):
    r = make_server("--shards", 2).client(decode_responses=True)
    members = {"m%d" % i: float(i) for i in range(300)}
    r.zadd("z", members)
    assert r.zrandmember("z") in members
    distinct = r.zrandmember("z", 50)
    assert len(distinct) == 50 and len(set(distinct)) == 50 and set(distinct) <= set(members)
    assert sorted(r.zrandmember("z", 1000)) == sorted(members)  # all, once each
    repeated = r.zrandmember("z", -1000)
    assert len(repeated) == 1000 and set(repeated) <= set(members)
    assert len(set(repeated)) > 200  # picks spread over the set
    pairs = r.zrandmember("z", 5, withscores=True)
    assert len(pairs) == 10 and all(members[pairs[i]] == float(pairs[i + 1]) for i in range(0, 10, 2))
    assert r.zrandmember("missing") is None and r.zrandmember("missing", 3) == []
    assert r.zrandmember("z", 0) == []
    r.set("s", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.zrandmember("s")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("ZRANDMEMBER", "z", 1, "NOSUCH")
    with pytest.raises(redis.ResponseError, match="out of range"):
        r.execute_command("ZRANDMEMBER", "z", -9223372036854775807)
    # RESP3 nests each pair.
    r3 = redis.Redis(port=r.connection_pool.connection_kwargs["port"], protocol=3, decode_responses=True)
    nested = r3.execute_command("ZRANDMEMBER", "z", 3, "WITHSCORES")
    assert len(nested) == 3 and all(members[m] == s for m, s in nested)


@pytest.mark.parametrize("command", [["ZUNIONSTORE", "{q}dst", 2, "{q}a", "{q}b"],
                                     ["ZRANGESTORE", "{q}dst", "{q}a", 0, -1]])
def test_store_wakes_a_client_blocked_on_the_destination(make_server, command):
    srv = make_server("--shards", 2)
    r = srv.client(decode_responses=True)
    r.zadd("{q}a", {"x": 1})
    r.zadd("{q}b", {"y": 2})
    waiter = srv.client(decode_responses=True)
    result = []
    t = threading.Thread(target=lambda: result.append(waiter.bzpopmin("{q}dst", timeout=10)))
    t.start()
    assert wait_for(lambda: r.info("clients")["blocked_clients"] == 1)
    r.execute_command(*command)
    t.join(10)
    assert result == [("{q}dst", "x", 1.0)]


def test_scores_of_any_length_as_redis(make_server, redis_server):
    """DBL_MAX written out in full has 309 digits; Redis reads a double of any length."""
    ours = make_server().client(decode_responses=True)
    dbl_max = str(int(1.7976931348623157e308))
    long_one = "1." + "0" * 6000

    def replies(c):
        out = []
        for args in (["ZADD", "z", dbl_max, "max"], ["ZADD", "z", "-" + dbl_max, "min"], ["ZSCORE", "z", "max"],
                     ["ZADD", "z", long_one, "one"], ["ZINCRBY", "z", long_one, "one"],
                     ["ZUNIONSTORE", "u", 1, "z", "WEIGHTS", long_one], ["ZSCORE", "u", "one"],
                     ["ZADD", "z", "1" + "0" * 309, "too-big"], ["ZADD", "z", " 1", "space"]):
            try:
                out.append(c.execute_command(*args))
            except redis.ResponseError as e:
                out.append("error: %s" % e)
        return out
    mine = replies(ours)
    assert mine == replies(redis_server)
    assert mine[:3] == [1, 1, 1.7976931348623157e308]

"""Sorted sets against redis-server: one random stream of sorted-set commands goes to both,
and every reply must match. The sets grow to thousands of members, so Berth's B+tree runs
with inner nodes and splits, shares and merges its nodes along the way."""
import random

import pytest
import redis


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
        elif r < 0.96:
            args = ["ZSCORE", key, member()]
        else:
            args = ["ZMSCORE", key, member(), member()]
        yield args


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
    for key in ["z0", "z1", "lex"]:
        assert run(ours, ["ZRANGE", key, 0, -1, "WITHSCORES"]) == run(theirs, ["ZRANGE", key, 0, -1, "WITHSCORES"])
    # Big enough that the tree has inner nodes under its root (a leaf holds 64).
    assert theirs.zcard("z0") > 2000

"""Streams over real sockets: the data type, consumer groups, and XREAD/XREADGROUP BLOCK
woken by XADD on the same shard and on another one."""
import time

import pytest
import redis

from test_blocking import bg, client, pair, srv, wait_blocked  # noqa: F401 (bg and srv are fixtures)
from test_server import raw


def err(fn, *args):
    with pytest.raises(redis.ResponseError) as e:
        fn(*args)
    return str(e.value)


def test_xadd_ids_and_trimming(r):
    assert r.xadd("s", {"a": 1}, id="1-1") == "1-1"
    assert r.xadd("s", {"b": 2}, id="1-*") == "1-2"
    assert r.xadd("s", {"c": 3}, id="5") == "5-0"
    auto = r.xadd("s", {"d": 4})
    ms, seq = map(int, auto.split("-"))
    assert ms > 5 and abs(ms - time.time() * 1000) < 60_000
    assert "equal or smaller" in err(r.xadd, "s", {"x": 1}, "1-1")
    assert "greater than 0-0" in err(r.xadd, "s2", {"x": 1}, "0-0")
    assert "Invalid stream ID" in err(r.xadd, "s", {"x": 1}, "abc")
    assert "wrong number of arguments" in err(r.execute_command, "XADD", "s", "*", "onlyfield")
    assert r.xadd("missing", {"a": 1}, nomkstream=True) is None and r.exists("missing") == 0
    assert r.xlen("s") == 4
    r.set("str", "x")
    assert "WRONGTYPE" in err(r.xadd, "str", {"a": 1})
    assert r.type("s") == "stream"
    # Exact and approximate trimming.
    for i in range(250):
        r.xadd("t", {"i": i}, id=f"{i + 1}-0")
    assert r.xtrim("t", maxlen=200) == 0  # redis-py trims with ~ by default: no whole node to drop
    assert r.xtrim("t", maxlen=200, approximate=False) == 50 and r.xlen("t") == 200
    assert r.xtrim("t", maxlen=10, approximate=True) == 150  # whole nodes of 100 only
    assert r.xlen("t") == 50
    assert r.xtrim("t", minid="240", approximate=False) == 39 and r.xrange("t", count=1)[0][0] == "240-0"
    r.xadd("t", {"i": "x"}, id="300-0", maxlen=3, approximate=False)
    assert r.xlen("t") == 3
    assert "LIMIT cannot be used without" in err(r.execute_command, "XTRIM", "t", "MAXLEN", 1, "LIMIT", 1)
    assert "must be >= 0" in err(r.execute_command, "XTRIM", "t", "MAXLEN", -1)


def test_xrange_xrevrange_xdel(r):
    for i in range(1, 6):
        r.xadd("s", {"f": i}, id=f"{i}-0")
    assert [e[0] for e in r.xrange("s")] == ["1-0", "2-0", "3-0", "4-0", "5-0"]
    assert r.xrange("s", "2", "3") == [("2-0", {"f": "2"}), ("3-0", {"f": "3"})]
    assert [e[0] for e in r.xrange("s", "(2-0", "+", count=2)] == ["3-0", "4-0"]
    assert [e[0] for e in r.xrevrange("s", "+", "-", count=2)] == ["5-0", "4-0"]
    assert [e[0] for e in r.xrevrange("s", "(5-0", "(2-0")] == ["4-0", "3-0"]
    assert r.xrange("nothing") == []
    assert "Invalid stream ID" in err(r.xrange, "s", "x", "+")
    assert r.xdel("s", "2-0", "9-0") == 1
    assert r.xlen("s") == 4
    info = r.xinfo_stream("s")
    assert info["length"] == 4 and info["max-deleted-entry-id"] == "2-0" and info["entries-added"] == 5
    assert info["first-entry"] == ("1-0", {"f": "1"}) and info["last-entry"] == ("5-0", {"f": "5"})
    assert "no such key" in err(r.xinfo_stream, "nothing")


def test_xread(r):
    r.xadd("{x}a", {"k": "v1"}, id="1-0")
    r.xadd("{x}a", {"k": "v2"}, id="2-0")
    r.xadd("{x}b", {"k": "w1"}, id="1-0")
    assert r.xread({"{x}a": "0", "{x}b": "1-0"}) == [["{x}a", [("1-0", {"k": "v1"}), ("2-0", {"k": "v2"})]]]
    assert r.xread({"{x}a": "0", "{x}b": "0"}, count=1) == [["{x}a", [("1-0", {"k": "v1"})]], ["{x}b", [("1-0", {"k": "w1"})]]]
    assert r.xread({"{x}a": "$"}) == []
    assert r.xread({"{x}a": "+"}) == [["{x}a", [("2-0", {"k": "v2"})]]]
    assert "Unbalanced" in err(r.execute_command, "XREAD", "STREAMS", "{x}a", "{x}b", "0")
    assert "only when calling XREADGROUP" in err(r.execute_command, "XREAD", "STREAMS", "{x}a", ">")
    assert "timeout is negative" in err(r.execute_command, "XREAD", "BLOCK", -1, "STREAMS", "{x}a", "$")
    start = time.time()
    assert r.xread({"{x}a": "$"}, block=100) == []
    assert time.time() - start >= 0.09


def test_consumer_groups(r):
    for i in range(1, 5):
        r.xadd("s", {"n": i}, id=f"{i}-0")
    assert r.xgroup_create("s", "g", id="0") is True
    assert "BUSYGROUP" in err(r.xgroup_create, "s", "g", "0")
    assert "requires the key to exist" in err(r.xgroup_create, "nokey", "g", "0")
    assert r.xgroup_create("made", "g", id="$", mkstream=True) is True and r.xlen("made") == 0
    assert r.xreadgroup("g", "alice", {"s": ">"}, count=2) == [["s", [("1-0", {"n": "1"}), ("2-0", {"n": "2"})]]]
    assert r.xreadgroup("g", "bob", {"s": ">"}) == [["s", [("3-0", {"n": "3"}), ("4-0", {"n": "4"})]]]
    assert r.xreadgroup("g", "bob", {"s": ">"}) == []
    # History: alice's own pending entries, again.
    assert r.xreadgroup("g", "alice", {"s": "0"}) == [["s", [("1-0", {"n": "1"}), ("2-0", {"n": "2"})]]]
    summary = r.xpending("s", "g")
    assert summary["pending"] == 4 and summary["min"] == "1-0" and summary["max"] == "4-0"
    assert sorted((c["name"], c["pending"]) for c in summary["consumers"]) == [("alice", 2), ("bob", 2)]
    rows = r.xpending_range("s", "g", "-", "+", 10)
    assert [(x["message_id"], x["consumer"], x["times_delivered"]) for x in rows] == [
        ("1-0", "alice", 2), ("2-0", "alice", 2), ("3-0", "bob", 1), ("4-0", "bob", 1)]
    assert [x["message_id"] for x in r.xpending_range("s", "g", "-", "+", 10, consumername="bob")] == ["3-0", "4-0"]
    assert r.xack("s", "g", "1-0", "9-0") == 1
    # A deleted entry shows up as nil in history and leaves the PEL when claimed.
    r.xdel("s", "2-0")
    assert r.xreadgroup("g", "alice", {"s": "0"}) == [["s", [("2-0", {})]]]  # nil fields; redis-py shows {}
    port = r.connection_pool.connection_kwargs["port"]
    out, _ = raw(port, b"XREADGROUP GROUP g alice STREAMS s 0\r\n", read_until_close=False)
    assert out == b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n"
    claimed = r.xclaim("s", "g", "carol", 0, ["2-0", "3-0"])
    assert claimed == [("3-0", {"n": "3"})]
    assert [x["consumer"] for x in r.xpending_range("s", "g", "-", "+", 10)] == ["carol", "bob"]
    assert r.xclaim("s", "g", "dave", 0, ["4-0"], justid=True) == ["4-0"]
    cursor, entries, deleted = r.xautoclaim("s", "g", "erin", 0, "0-0", count=10)
    assert cursor == "0-0" and [e[0] for e in entries] == ["3-0", "4-0"] and deleted == []
    assert r.xclaim("s", "g", "nobody", 3_600_000, ["3-0"]) == []
    names = [c["name"] for c in r.xinfo_consumers("s", "g")]
    assert "nobody" not in names and "erin" in names
    assert r.xgroup_createconsumer("s", "g", "frank") == 1
    assert r.xgroup_createconsumer("s", "g", "frank") == 0
    assert r.xgroup_delconsumer("s", "g", "erin") == 2
    assert r.xpending("s", "g")["pending"] == 0
    groups = r.xinfo_groups("s")
    assert groups[0]["name"] == "g" and groups[0]["last-delivered-id"] == "4-0" and groups[0]["lag"] == 0
    assert r.xgroup_setid("s", "g", "0", entries_read=0) is True
    assert r.xinfo_groups("s")[0]["lag"] is None  # a deleted entry ahead makes the lag unknowable, as in Redis
    assert "NOGROUP" in err(r.xreadgroup, "nog", "c", {"s": ">"})
    assert "NOGROUP" in err(r.xpending, "s", "nog")
    assert r.xgroup_destroy("s", "g") == 1 and r.xgroup_destroy("s", "g") == 0
    full = r.xinfo_stream("s", full=True)
    assert full["length"] == 3 and len(full["entries"]) == 3 and full["groups"] == []


@pytest.mark.parametrize("cross", [False, True], ids=["same-shard", "cross-shard"])
def test_xread_block_wakes_on_xadd(srv, bg, cross):
    r = client(srv)
    a, b = pair(cross)
    r.xadd(a, {"old": 1}, id="1-0")
    f = bg.run("XREAD", "BLOCK", 0, "STREAMS", a, b, "$", "$")
    g = bg.run("XREAD", "COUNT", 5, "BLOCK", 0, "STREAMS", b, "0")
    wait_blocked(r, 2)
    r.xadd(b, {"new": 2}, id="5-0")
    assert f.result(5) == [[b, [["5-0", {"new": "2"}]]]]
    assert g.result(5) == [[b, [["5-0", {"new": "2"}]]]]
    # Inside MULTI XREAD BLOCK does not block.
    p = r.pipeline(transaction=True)
    p.execute_command("XREAD", "BLOCK", 0, "STREAMS", a, "$")
    assert p.execute() == [[]]  # the null reply, as redis-py shows it


@pytest.mark.parametrize("cross", [False, True], ids=["same-shard", "cross-shard"])
def test_xreadgroup_block_delivers_each_entry_once(srv, bg, cross):
    r = client(srv)
    a, b = pair(cross)
    for k in (a, b):
        r.xgroup_create(k, "g", id="$", mkstream=True)
    waiters = [bg.run("XREADGROUP", "GROUP", "g", f"c{i}", "BLOCK", 0, "STREAMS", a, b, ">", ">") for i in range(3)]
    wait_blocked(r, 3)
    r.xadd(a, {"job": 1}, id="1-0")
    r.xadd(b, {"job": 2}, id="1-0")
    r.xadd(a, {"job": 3}, id="2-0")
    deadline = time.time() + 5
    while sum(f.done() for f in waiters) < 3 and time.time() < deadline:
        time.sleep(0.01)
    got = sorted((res[0][0], res[0][1][0][0]) for res in (f.result(5) for f in waiters))
    assert got == sorted([(a, "1-0"), (b, "1-0"), (a, "2-0")])
    assert r.xpending(a, "g")["pending"] == 2 and r.xpending(b, "g")["pending"] == 1


def test_xreadgroup_waiters_hear_about_deleted_stream_and_group(srv, bg):
    """Woken XREADGROUP answers as Redis 7.2 re-running it: NOGROUP, or WRONGTYPE; each is
    a failed call in commandstats and counts in errorstats."""
    r = client(srv)
    r.config_resetstat()
    r.xgroup_create("gone", "g", id="$", mkstream=True)
    r.xgroup_create("kept", "g", id="$", mkstream=True)
    f = bg.run("XREADGROUP", "GROUP", "g", "c", "BLOCK", 0, "STREAMS", "gone", ">")
    h = bg.run("XREADGROUP", "GROUP", "g", "c", "BLOCK", 0, "STREAMS", "kept", ">")
    wait_blocked(r, 2)
    r.delete("gone")
    with pytest.raises(redis.ResponseError, match="NOGROUP No such key 'gone' or consumer group 'g' in XREADGROUP"):
        f.result(5)
    r.xgroup_destroy("kept", "g")
    with pytest.raises(redis.ResponseError, match="NOGROUP No such key 'kept' or consumer group 'g' in XREADGROUP"):
        h.result(5)
    r.xgroup_create("kept", "g", id="$")
    retyped = bg.run("XREADGROUP", "GROUP", "g", "c", "BLOCK", 0, "STREAMS", "kept", ">")
    wait_blocked(r, 1)
    r.set("kept", "now a string")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        retyped.result(5)
    assert r.info("clients")["blocked_clients"] == 0
    stats = r.info("commandstats")["cmdstat_xreadgroup"]
    assert (stats["calls"], stats["failed_calls"], stats["rejected_calls"]) == (3, 3, 0)
    errors = r.info("errorstats")
    assert (errors["errorstat_NOGROUP"]["count"], errors["errorstat_WRONGTYPE"]["count"]) == (2, 1)


def test_approximate_trimming_removes_whole_nodes_as_redis(make_server, redis_server):
    """`~` trims whole listpack nodes only, at most LIMIT entries: node boundaries follow
    stream-node-max-entries and -bytes as in Redis."""
    ours = make_server("--shards", 2).client(decode_responses=True)
    for c in (ours, redis_server):
        c.config_set("stream-node-max-entries", 10)
        for j in range(100):
            c.xadd("s", {"xitem": "v"}, id=f"1-{j + 1}")
    for c in (ours, redis_server):
        c.config_set("stream-node-max-entries", 2)
        for j in range(3):
            c.xadd("t", {"xitem": "v"}, id=f"1-{j + 1}")
        c.config_set("stream-node-max-entries", 100)
        c.config_set("stream-node-max-bytes", 200)
        for j in range(30):
            c.xadd("u", {"f": "w" * (j % 7 * 9), "n": j * 1000}, id=f"{j + 1}-1")
        c.xdel("u", "30-1")
        c.xadd("u", {"g": "x"}, id="31-1")

    def steps(c):
        return [c.execute_command("XADD", "s", "MAXLEN", "~", 55, "LIMIT", 30, "2-1", "xitem", "v"), c.xlen("s"),
                c.execute_command("XADD", "s", "MAXLEN", "~", 55, "LIMIT", 30, "2-2", "xitem", "v"), c.xlen("s"),
                c.execute_command("XTRIM", "t", "MAXLEN", "~", 0, "LIMIT", 1),
                c.execute_command("XTRIM", "t", "MAXLEN", "~", 0, "LIMIT", 2),
                c.xinfo_stream("u")["radix-tree-keys"],
                c.execute_command("XTRIM", "u", "MINID", "~", "20-1"),
                c.execute_command("XTRIM", "u", "MAXLEN", "~", 3), c.xlen("u")]
    mine = steps(ours)
    assert mine == steps(redis_server)
    assert mine[1] == 71 and mine[3] == 62 and mine[4:6] == [0, 2]


def test_xadd_sequence_never_overflows_into_the_next_millisecond(r):
    r.xadd("s", {"a": "b"}, id="1-18446744073709551615")
    # redis-server 7.0 answers "Elements are too large to be stored" here; 7.2 and
    # Valkey give this text.
    assert err(r.xadd, "s", {"c": "d"}, "1-*") == \
        "The ID specified in XADD is equal or smaller than the target stream top item"
    assert r.xadd("s", {"c": "d"}, id="2-*") == "2-0"


def test_xsetid_and_xgroup_arguments_as_redis(make_server, redis_server):
    ours = make_server("--shards", 2).client(decode_responses=True)

    def replies(c):
        out = []
        for args in (["XSETID", "x", "1-1"], ["XADD", "x", "1-1", "a", 1], ["XADD", "x", "1-2", "b", 2],
                     ["XDEL", "x", "1-2"], ["XSETID", "x", "1-1"], ["XSETID", "x", "1-0"],
                     ["XSETID", "x", "1-1", "0"], ["XSETID", "x", "5-0", "ENTRIESADDED", -1],
                     ["XSETID", "x", "5-0", "ENTRIESADDED", 0], ["XSETID", "x", "5-0", "MAXDELETEDID", "6-0"],
                     ["XSETID", "x", "5-0", "ENTRIESADDED", 10, "MAXDELETEDID", "3-0"], ["XINFO", "STREAM", "x"],
                     ["XGROUP", "CREATE", "x", "g", "$"], ["XGROUP", "CREATE", "x", "h", "-"],
                     ["XGROUP", "SETID", "x", "g", "-"], ["XINFO", "GROUPS", "x"],
                     ["XGROUP", "SETID", "x", "g", "+", "ENTRIESREAD", 3], ["XINFO", "GROUPS", "x"],
                     ["XGROUP", "SETID", "x", "g", "0", "ENTRIESREAD", 3, "x"], ["XGROUP", "SETID", "x", "g", "0", "x", 3],
                     ["XGROUP", "SETID", "x", "nog", "0", "x"], ["XGROUP", "CREATE", "x", "g", "0", "MKSTREAM", "x"],
                     ["XGROUP", "HELP", "extra"], ["XINFO", "HELP", "extra"], ["XGROUP", "HELP"], ["XINFO", "HELP"]):
            try:
                out.append(c.execute_command(*args))
            except redis.ResponseError as e:
                out.append("error: %s" % e)
        return out
    assert replies(ours) == replies(redis_server)


def test_xinfo_consumers_reports_activity_as_redis_7_2(make_server, valkey_reference):
    """`inactive` (XINFO CONSUMERS) and `active-time` (XINFO STREAM FULL), Redis 7.2's: the
    time since a consumer last read new entries or claimed some; -1 until it has. A read
    that finds nothing, or reads with NOACK, only counts as being seen (`idle`)."""
    ours = make_server().client(decode_responses=True)

    def activity(c):
        c.xadd("s", {"f": "v"}, id="1-1")
        c.xgroup_create("s", "g", id="$")
        c.xgroup_createconsumer("s", "g", "idler")
        c.xreadgroup("g", "idler", {"s": ">"})
        c.xadd("s", {"f": "v"}, id="1-2")
        c.xreadgroup("g", "noacker", {"s": ">"}, noack=True)
        c.xadd("s", {"f": "v"}, id="1-3")
        c.xreadgroup("g", "reader", {"s": ">"})
        c.xclaim("s", "g", "claimer", 0, ["1-3"])
        time.sleep(0.05)
        consumers = {x["name"]: x for x in c.xinfo_consumers("s", "g")}
        full = {x["name"]: x for x in c.xinfo_stream("s", full=True)["groups"][0]["consumers"]}
        return ({n: (sorted(x), x["inactive"] == -1, x["idle"] >= 40) for n, x in consumers.items()},
                {n: (sorted(x), x["active-time"] == -1) for n, x in full.items()})
    ours_activity = activity(ours)
    assert ours_activity == activity(valkey_reference)
    assert ours_activity[0]["idler"][1] and not ours_activity[0]["claimer"][1]


def test_info_counts_keys_with_clients_blocked_in_xreadgroup(srv, bg):
    r = client(srv)
    list_waiter = bg.run("BLPOP", "k", 0)
    wait_blocked(r, 1)
    clients = r.info("clients")
    assert (clients["total_blocking_keys"], clients["total_blocking_keys_on_nokey"]) == (1, 0)
    r.xgroup_create("s", "g", id="$", mkstream=True)
    reader = bg.run("XREADGROUP", "GROUP", "g", "c", "BLOCK", 0, "STREAMS", "s", ">")
    wait_blocked(r, 2)
    clients = r.info("clients")
    assert (clients["total_blocking_keys"], clients["total_blocking_keys_on_nokey"]) == (2, 1)
    r.delete("s")
    with pytest.raises(redis.ResponseError, match="NOGROUP"):
        reader.result(5)
    clients = r.info("clients")
    assert (clients["total_blocking_keys"], clients["total_blocking_keys_on_nokey"]) == (1, 0)
    r.rpush("k", "x")
    assert list_waiter.result(5) == ["k", "x"]

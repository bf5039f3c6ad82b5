"""Pub/Sub over real sockets on four shards: fan-out, patterns, sharded channels, RESP2
subscribed mode, RESP3 push, output-buffer limits, redis-py sync and asyncio, redis-cli."""
import asyncio
import socket
import subprocess
import threading
import time

import pytest
import redis
import redis.asyncio as aioredis

from conftest import wait_for


@pytest.fixture
def srv(make_server):
    return make_server("--shards", 4)


def messages(ps, n, timeout=5):
    out, deadline = [], time.time() + timeout
    while len(out) < n and time.time() < deadline:
        m = ps.get_message(timeout=0.1)
        if m and m["type"] in ("message", "pmessage", "smessage"):
            out.append(m)
    return out


def test_fan_out_reaches_every_subscriber_once_in_order(srv):
    r = srv.client(decode_responses=True)
    subs = []
    for _ in range(12):  # connections land on all four shards
        ps = srv.client(decode_responses=True).pubsub()
        ps.subscribe("news")
        assert ps.get_message(timeout=2)["type"] == "subscribe"
        subs.append(ps)
    homes = {int(c["shard"]) for c in r.client_list() if int(c["sub"]) > 0}
    assert homes == {0, 1, 2, 3}
    for i in range(50):
        assert r.publish("news", f"m{i}") == 12
    for ps in subs:
        got = messages(ps, 50)
        assert [m["data"] for m in got] == [f"m{i}" for i in range(50)]
        assert ps.get_message(timeout=0.05) is None  # nothing twice
    assert r.pubsub_numsub("news", "other") == [("news", 12), ("other", 0)]
    assert r.info("stats")["pubsub_channels"] == 1
    assert r.info("clients")["pubsub_clients"] == 12


def test_patterns_and_counts(srv):
    r = srv.client(decode_responses=True)
    ps = r.pubsub()
    ps.psubscribe("user:*", "user:1*")
    ps.subscribe("user:10")
    for _ in range(3):
        ps.get_message(timeout=1)
    # One channel subscriber plus two matching patterns on the same connection.
    assert r.publish("user:10", "hi") == 3
    got = messages(ps, 3)
    assert sorted((m["type"], m["pattern"]) for m in got) == [("message", None), ("pmessage", "user:*"), ("pmessage", "user:1*")]
    assert r.publish("user:2", "x") == 1
    assert r.pubsub_numpat() == 2
    assert sorted(r.pubsub_channels()) == ["user:10"]
    assert r.pubsub_channels("nomatch*") == []


def test_sharded_channels(srv):
    r = srv.client(decode_responses=True)
    raw = srv.client(decode_responses=True).pubsub()
    raw.ssubscribe("orders")
    assert raw.get_sharded_message(timeout=1)["type"] == "ssubscribe"
    assert r.spublish("orders", "o1") == 1
    assert r.publish("orders", "not-sharded") == 0
    m = raw.get_sharded_message(timeout=2)
    assert m["type"] == "smessage" and m["data"] == "o1"
    assert r.execute_command("PUBSUB", "SHARDCHANNELS") == ["orders"]
    assert r.execute_command("PUBSUB", "SHARDNUMSUB", "orders") == ["orders", 1]


def raw_exchange(port, payload, expect_end):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(3)
        s.sendall(payload)
        data = b""
        while not data.endswith(expect_end):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_resp2_subscribed_mode_and_unsubscribe_replies(srv):
    out = raw_exchange(srv.port, b"SUBSCRIBE a b\r\nGET k\r\nPING\r\nPING hi\r\nUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nGET k\r\n", b"$-1\r\n")
    assert out.startswith(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n")
    assert b"-ERR Can't execute 'get'" in out
    assert b"*2\r\n$4\r\npong\r\n$0\r\n\r\n" in out and b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n" in out
    assert out.count(b"$11\r\nunsubscribe\r\n") == 3
    assert b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n" in out  # nothing left to unsubscribe
    assert out.endswith(b"$-1\r\n")  # back to normal mode: GET works
    out = raw_exchange(srv.port, b"SUBSCRIBE a\r\nRESET\r\nGET k\r\n", b"$-1\r\n")
    assert b"+RESET\r\n$-1\r\n" in out


def test_resp3_push_while_running_commands(srv):
    out = raw_exchange(srv.port, b"HELLO 3\r\nSUBSCRIBE c\r\nSET k v\r\nPUBLISH c hello\r\nGET k\r\n", b"$1\r\nv\r\n")
    # A push for the subscription, the SET, PUBLISH's count, then our own message: pushes to
    # oneself follow the command's reply, as Redis 7.2 and Valkey order them (7.0 sent the
    # message first).
    tail = out[out.index(b">3\r\n$9\r\nsubscribe"):]
    assert tail == (b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n+OK\r\n"
                    b":1\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$5\r\nhello\r\n$1\r\nv\r\n")


def test_slow_subscriber_is_disconnected_and_nobody_else_waits(srv):
    r = srv.client(decode_responses=True)
    assert r.config_set("client-output-buffer-limit", "pubsub 1mb 512kb 1") is True
    assert "pubsub 1048576 524288 1" in r.config_get("client-output-buffer-limit")["client-output-buffer-limit"]
    slow = socket.create_connection(("127.0.0.1", srv.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"SUBSCRIBE firehose\r\n")
    fast = srv.client(decode_responses=True).pubsub()
    fast.subscribe("firehose")
    fast.get_message(timeout=1)
    assert wait_for(lambda: r.pubsub_numsub("firehose")[0][1] == 2)
    payload = "x" * 32768
    received = []
    stop = threading.Event()

    def read_fast():
        while not stop.is_set():
            m = fast.get_message(timeout=0.1)
            if m and m["type"] == "message":
                received.append(m)

    t = threading.Thread(target=read_fast)
    t.start()
    # Publish until the kernel's socket buffers toward the subscriber that never reads
    # are full and its output piles up in the server past the limit (a few MB at most).
    # The publisher keeps at most four messages (128 KB) ahead of the fast reader, so on
    # a loaded machine the fast subscriber's backlog still fits in its kernel buffers and
    # only the subscriber that never reads can reach the limit.
    published = 0
    while r.pubsub_numsub("firehose")[0][1] == 2 and published < 4000:
        r.publish("firehose", payload)
        published += 1
        assert wait_for(lambda: published - len(received) <= 4, timeout=20), "fast subscriber stalled"
    assert wait_for(lambda: r.pubsub_numsub("firehose")[0][1] == 1), "slow subscriber still connected"
    assert wait_for(lambda: len(received) == published, timeout=20)
    stop.set()
    t.join()
    assert r.ping() is True
    slow.close()


def test_redis_py_asyncio_pubsub(srv):
    async def main():
        sub = aioredis.Redis(port=srv.port, decode_responses=True)
        pub = aioredis.Redis(port=srv.port, decode_responses=True)
        ps = sub.pubsub()
        await ps.subscribe("async-ch")
        await ps.psubscribe("async-*")
        await asyncio.sleep(0.05)
        assert await pub.publish("async-ch", "payload") == 2
        seen = []
        deadline = time.time() + 5
        while len(seen) < 2 and time.time() < deadline:
            m = await ps.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if m:
                seen.append(m["type"])
        assert sorted(seen) == ["message", "pmessage"]
        await ps.aclose()
        await sub.aclose()
        await pub.aclose()

    asyncio.run(main())


def test_redis_cli_subscribe(srv):
    proc = subprocess.Popen(["redis-cli", "-p", str(srv.port), "SUBSCRIBE", "cli"], stdout=subprocess.PIPE, text=True)
    r = srv.client(decode_responses=True)
    assert wait_for(lambda: r.pubsub_numsub("cli")[0][1] == 1)
    assert r.publish("cli", "from-test") == 1
    lines = []
    deadline = time.time() + 5
    while "from-test" not in lines and time.time() < deadline:
        lines.append(proc.stdout.readline().strip())
    proc.terminate()
    proc.wait()
    assert lines[:3] == ["subscribe", "cli", "1"] and "from-test" in lines


def test_keyspace_notifications(srv):
    r = srv.client(decode_responses=True)
    with pytest.raises(redis.ResponseError, match="Invalid event class"):
        r.config_set("notify-keyspace-events", "KEQ")
    assert r.config_set("notify-keyspace-events", "KEA") is True
    ps = srv.client(decode_responses=True).pubsub()
    ps.psubscribe("__keyspace@0__:*", "__keyevent@0__:*")
    for _ in range(2):
        ps.get_message(timeout=1)

    def events(n):
        got = messages(ps, n)
        return [(m["channel"], m["data"]) for m in got]

    r.set("{k}a", "1")
    assert events(2) == [("__keyspace@0__:{k}a", "set"), ("__keyevent@0__:set", "{k}a")]
    r.expire("{k}a", 100)
    assert events(2) == [("__keyspace@0__:{k}a", "expire"), ("__keyevent@0__:expire", "{k}a")]
    r.rpush("list", "x")
    r.lpop("list")  # empties it: lpop, then del
    assert events(6) == [("__keyspace@0__:list", "rpush"), ("__keyevent@0__:rpush", "list"),
                         ("__keyspace@0__:list", "lpop"), ("__keyevent@0__:lpop", "list"),
                         ("__keyspace@0__:list", "del"), ("__keyevent@0__:del", "list")]
    r.delete("{k}a", "missing")  # only the key that existed
    assert events(2) == [("__keyspace@0__:{k}a", "del"), ("__keyevent@0__:del", "{k}a")]
    assert ps.get_message(timeout=0.1) is None
    r.set("short", "v", px=30)
    events(2)  # set
    assert events(2) == [("__keyspace@0__:short", "expired"), ("__keyevent@0__:expired", "short")]
    r.set("{x}1", "v")
    r.rename("{x}1", "{x}2")
    assert events(6)[2:] == [("__keyspace@0__:{x}1", "rename_from"), ("__keyevent@0__:rename_from", "{x}1"),
                             ("__keyspace@0__:{x}2", "rename_to"), ("__keyevent@0__:rename_to", "{x}2")]
    # Only key-event channels, only list events, plus new keys.
    r.config_set("notify-keyspace-events", "Eln")
    r.set("string", "1")  # a new key, but no list event
    r.lpush("fresh", "a")
    assert events(3) == [("__keyevent@0__:new", "string"), ("__keyevent@0__:new", "fresh"),
                         ("__keyevent@0__:lpush", "fresh")]
    # Key misses (m) and the destination of a *STORE command (s).
    r.config_set("notify-keyspace-events", "Ems")
    r.get("absent")
    r.sadd("{s}a", "1")
    r.sinterstore("{s}dst", ["{s}a"])
    assert events(3) == [("__keyevent@0__:keymiss", "absent"), ("__keyevent@0__:sadd", "{s}a"),
                         ("__keyevent@0__:sinterstore", "{s}dst")]
    # An empty result deletes the destination: "del" (generic), not the STORE command's
    # event, and no event at all when there was nothing to delete.
    r.config_set("notify-keyspace-events", "Egsz")
    r.sinterstore("{s}dst", ["{s}a", "{s}missing"])
    r.zadd("{s}z", {"m": 1})
    r.zunionstore("{s}zdst", ["{s}z"])
    r.zinterstore("{s}zdst", ["{s}z", "{s}missing"])
    r.zinterstore("{s}never", ["{s}missing"])
    r.execute_command("ZRANGESTORE", "{s}zdst", "{s}z", 0, -1)
    assert events(5) == [("__keyevent@0__:del", "{s}dst"), ("__keyevent@0__:zadd", "{s}z"),
                         ("__keyevent@0__:zunionstore", "{s}zdst"), ("__keyevent@0__:del", "{s}zdst"),
                         ("__keyevent@0__:zrangestore", "{s}zdst")]
    r.config_set("notify-keyspace-events", "")
    r.lpush("fresh", "b")
    assert ps.get_message(timeout=0.2) is None


def read_exactly(sock, expected, timeout=5):
    """Reads as many bytes as `expected` has (or what came before a timeout)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while len(data) < len(expected):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data


@pytest.mark.parametrize("mode", ["off", "skip"])
def test_subscribe_confirmations_reach_clients_with_replies_off(srv, mode):
    r = srv.client(decode_responses=True)
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(f"CLIENT REPLY {mode}\r\nSUBSCRIBE chan\r\nPSUBSCRIBE ch*\r\n".encode())
        expected = (b"*3\r\n$9\r\nsubscribe\r\n$4\r\nchan\r\n:1\r\n"
                    b"*3\r\n$10\r\npsubscribe\r\n$3\r\nch*\r\n:2\r\n")
        assert read_exactly(s, expected) == expected
        assert r.publish("chan", "hi") == 2
        expected = (b"*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$2\r\nhi\r\n"
                    b"*4\r\n$8\r\npmessage\r\n$3\r\nch*\r\n$4\r\nchan\r\n$2\r\nhi\r\n")
        assert read_exactly(s, expected) == expected
        s.sendall(b"UNSUBSCRIBE chan\r\n")
        expected = b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nchan\r\n:1\r\n"
        assert read_exactly(s, expected) == expected


def test_new_key_event(srv):
    r = srv.client(decode_responses=True)
    r.config_set("notify-keyspace-events", "En")
    ps = srv.client(decode_responses=True).pubsub()
    ps.psubscribe("*")
    assert ps.get_message(timeout=2)["type"] == "psubscribe"
    r.set("foo", "bar")
    r.set("foo", "baz")  # not new the second time
    r.set("bar", "bar")
    r.rpush("list", "a")
    r.incr("counter")
    got = [(m["channel"], m["data"]) for m in messages(ps, 4)]
    assert got == [("__keyevent@0__:new", "foo"), ("__keyevent@0__:new", "bar"),
                   ("__keyevent@0__:new", "list"), ("__keyevent@0__:new", "counter")]
    ps.close()


def test_messages_published_by_a_transaction_or_script_follow_its_reply(srv):
    """A client subscribed to a channel it publishes to from MULTI/EXEC or a script gets
    the reply first, then the messages, as Redis 7.2 and Valkey order them."""
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"HELLO 3\r\n")
        s.recv(65536)
        s.sendall(b"SUBSCRIBE foo\r\n")
        expected = b">3\r\n$9\r\nsubscribe\r\n$3\r\nfoo\r\n:1\r\n"
        assert read_exactly(s, expected) == expected
        s.sendall(b"MULTI\r\nPING abc\r\nPUBLISH foo bar\r\nPUBLISH foo vaz\r\nPING def\r\nEXEC\r\n")
        expected = (b"+OK\r\n" + b"+QUEUED\r\n" * 4 + b"*4\r\n$3\r\nabc\r\n:1\r\n:1\r\n$3\r\ndef\r\n"
                    b">3\r\n$7\r\nmessage\r\n$3\r\nfoo\r\n$3\r\nbar\r\n>3\r\n$7\r\nmessage\r\n$3\r\nfoo\r\n$3\r\nvaz\r\n")
        assert read_exactly(s, expected) == expected
        s.sendall(b"EVAL \"redis.call('publish','foo','x') return 'bla'\" 0\r\n")
        expected = b"$3\r\nbla\r\n>3\r\n$7\r\nmessage\r\n$3\r\nfoo\r\n$1\r\nx\r\n"
        assert read_exactly(s, expected) == expected
    r = srv.client(decode_responses=True)
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed from read-only scripts"):
        r.eval_ro("return redis.call('publish', 'ch', 'msg')", 0)


def test_keyspace_event_settings_and_stream_events_match_redis_server(srv, redis_server):
    r = srv.client(decode_responses=True)
    for value in ["KA", "EKgx", "Kg$lshzxet", "Kg$lshzxetd", "Em", "KEAn", "Ex", "Kdn"]:
        r.config_set("notify-keyspace-events", value)
        redis_server.config_set("notify-keyspace-events", value)
        assert r.config_get("notify-keyspace-events") == redis_server.config_get("notify-keyspace-events"), value
    seen = []
    for c in (r, redis_server):
        c.config_set("notify-keyspace-events", "Kt")
        ps = c.pubsub()
        ps.psubscribe("*")
        assert ps.get_message(timeout=2)["type"] == "psubscribe"
        c.xgroup_create("mystream", "mygroup", "$", mkstream=True)
        c.execute_command("XGROUP", "CREATECONSUMER", "mystream", "mygroup", "Bob")
        entry = c.xadd("mystream", {"field1": "A"}, id="1")
        c.xreadgroup("mygroup", "Alice", {"mystream": ">"})
        c.execute_command("XCLAIM", "mystream", "mygroup", "Mike", "0", entry, "FORCE")
        c.execute_command("XGROUP", "DELCONSUMER", "mystream", "mygroup", "Lee")  # no such consumer
        c.execute_command("XAUTOCLAIM", "mystream", "mygroup", "Bob", "0", entry)
        c.execute_command("XGROUP", "DELCONSUMER", "mystream", "mygroup", "Bob")
        seen.append([m["data"] for m in messages(ps, 6)])
        ps.close()
    assert seen[0] == seen[1] == ["xgroup-create", "xgroup-createconsumer", "xadd", "xgroup-createconsumer",
                                  "xgroup-createconsumer", "xgroup-delconsumer"]

"""Blocking commands over real sockets: BLPOP and friends, timeouts, CLIENT UNBLOCK /
KILL / PAUSE, transactions, and exactly-once delivery, same-shard and cross-shard."""
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from conftest import wait_for

SHARDS = 4


def shard_of(key, shards=SHARDS):
    return key_slot(key.encode()) * shards // 16384


def keys_on(shard, count, prefix="k", shards=SHARDS):
    """`count` distinct key names owned by `shard`."""
    out, i = [], 0
    while len(out) < count:
        k = f"{prefix}{i}"
        if shard_of(k, shards) == shard:
            out.append(k)
        i += 1
    return out


def pair(cross):
    """Two keys on different shards (cross) or on one shard (hash tag)."""
    if cross:
        return keys_on(0, 1, "a")[0], keys_on(3, 1, "b")[0]
    return "{t}a", "{t}b"


@pytest.fixture
def srv(make_server):
    return make_server("--shards", SHARDS)


def client(server, **kw):
    return server.client(decode_responses=True, retry=Retry(NoBackoff(), 0), **kw)


def wait_blocked(r, n, timeout=5):
    """Waits until the server reports `n` blocked clients."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if r.info("clients")["blocked_clients"] == n:
            return
        time.sleep(0.005)
    raise AssertionError(f"expected {n} blocked clients, have {r.info('clients')['blocked_clients']}")


def norm(reply):
    """redis-py turns some pop replies into tuples; compare them as lists."""
    if isinstance(reply, (list, tuple)):
        return [norm(x) for x in reply]
    return reply


class Background:
    """Runs blocking commands on their own connections."""

    def __init__(self, server):
        self.server = server
        self.pool = ThreadPoolExecutor(max_workers=32)
        self.clients = []

    def run(self, *args, **kw):
        c = client(self.server, **kw)
        self.clients.append(c)
        return self.pool.submit(lambda: norm(c.execute_command(*args)))

    def close(self):
        for c in self.clients:
            c.close()
        self.pool.shutdown(wait=False, cancel_futures=True)


@pytest.fixture
def bg(srv):
    b = Background(srv)
    yield b
    b.close()


@pytest.mark.parametrize("cross", [False, True], ids=["same-shard", "cross-shard"])
def test_blpop_wakes_on_push_to_any_of_its_keys(srv, bg, cross):
    r = client(srv)
    k1, k2 = pair(cross)
    f = bg.run("BLPOP", k1, k2, 0)
    wait_blocked(r, 1)
    assert r.rpush(k2, "x", "y") == 2
    assert f.result(5) == [k2, "x"]
    assert r.lrange(k2, 0, -1) == ["y"]
    assert r.info("clients")["blocked_clients"] == 0
    # Data already there: no blocking, first non-empty key in argument order.
    r.rpush(k1, "z")
    assert r.blpop([k1, k2], 0) == (k1, "z")
    assert r.brpop([k1, k2], 0) == (k2, "y")


def test_waiters_are_served_first_come_first_served(srv, bg):
    r = client(srv)
    futures = []
    for i in range(3):
        futures.append(bg.run("BLPOP", "q", 0))
        wait_blocked(r, i + 1)
    r.rpush("q", "a", "b", "c", "d")
    assert [f.result(5) for f in futures] == [["q", "a"], ["q", "b"], ["q", "c"]]
    assert r.lrange("q", 0, -1) == ["d"]


def test_repeated_keys_in_one_command(srv, bg):
    r = client(srv)
    f = bg.run("BLPOP", "rk", "rk", 0)
    wait_blocked(r, 1)
    assert r.info("clients")["total_blocking_keys"] == 1
    r.lpush("rk", "v")
    assert f.result(5) == ["rk", "v"]
    assert r.exists("rk") == 0


def test_one_client_on_two_shards_is_served_exactly_once(srv, bg):
    r = client(srv)
    k1, k2 = pair(True)
    pusher1, pusher2 = client(srv), client(srv)
    for round_ in range(30):
        f = bg.run("BLPOP", k1, k2, 0)
        wait_blocked(r, 1)
        barrier = threading.Barrier(2)

        def push(c, k):
            barrier.wait()
            c.rpush(k, f"v{round_}")

        t1 = threading.Thread(target=push, args=(pusher1, k1))
        t2 = threading.Thread(target=push, args=(pusher2, k2))
        t1.start(); t2.start(); t1.join(); t2.join()
        key, value = f.result(5)
        assert value == f"v{round_}"
        other = k2 if key == k1 else k1
        assert r.llen(key) == 0 and r.lrange(other, 0, -1) == [f"v{round_}"]
        r.delete(k1, k2)


@pytest.mark.parametrize("cross", [False, True], ids=["same-shard", "cross-shard"])
def test_blmove_moves_atomically_and_wakes_destination_waiters(srv, bg, cross):
    r = client(srv)
    src, dst = pair(cross)
    mover = bg.run("BLMOVE", src, dst, "LEFT", "RIGHT", 0)
    wait_blocked(r, 1)
    popper = bg.run("BLPOP", dst, 0)
    wait_blocked(r, 2)
    r.rpush(src, "job")
    assert mover.result(5) == "job"
    assert popper.result(5) == [dst, "job"]
    assert r.exists(src, dst) == 0
    # BRPOPLPUSH with data present, and with the destination of the wrong type.
    r.rpush(src, "a", "b")
    assert r.brpoplpush(src, dst, 0) == "b"
    assert r.lrange(dst, 0, -1) == ["b"]
    r.delete(dst)
    r.set(dst, "string")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.blmove(src, dst, 0, "LEFT", "LEFT")
    assert r.lrange(src, 0, -1) == ["a"]


def test_timeouts_and_their_errors(srv):
    r = client(srv)
    start = time.time()
    assert r.blpop(["nothing"], 0.15) is None
    assert time.time() - start >= 0.14
    assert r.execute_command("BLMOVE", "nothing", "d", "LEFT", "LEFT", 0.05) is None
    assert r.execute_command("BZPOPMIN", "nothing", 0.05) is None
    assert r.execute_command("BLMPOP", 0.05, 1, "nothing", "LEFT") is None
    assert r.execute_command("BZMPOP", 0.05, 1, "nothing", "MIN") is None
    for bad, message in [(-1, "timeout is negative"), ("abc", "timeout is not a float or out of range"),
                         ("1e300", "timeout is out of range")]:
        with pytest.raises(redis.ResponseError, match=message):
            r.execute_command("BLPOP", "k", bad)
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("BLPOP", "k")
    with pytest.raises(redis.ResponseError, match="numkeys should be greater than 0"):
        r.execute_command("BLMPOP", 0, 0, "k", "LEFT")
    r.set("str", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.execute_command("BLPOP", "str", 0)
    assert r.info("clients")["blocked_clients"] == 0


def test_input_behind_a_blocked_command_and_after_it(server):
    """Commands pipelined behind a blocking one run when it ends, and what the client
    sends next is read intact: the resumed input is consumed while the connection's next
    read is already pending (io_uring), which once rewound the buffer under it."""
    def command(*args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        return out

    def read_replies(sock, n):
        data = b""
        while data.count(b"\r\n") < n:
            chunk = sock.recv(65536)
            assert chunk, "connection closed"
            data += chunk
        return data

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for i in range(1, 6):
            sock.sendall(command("BLPOP", "nothing", "0.02") + command("INCR", "after"))
            assert read_replies(sock, 2) == b"*-1\r\n:%d\r\n" % i
            sock.sendall(command("PING", f"next{i}"))
            assert read_replies(sock, 2) == b"$5\r\nnext%d\r\n" % i


def test_pipelined_consumers_mixing_blocking_and_plain_commands(server):
    """Consumers pipeline BLPOP/BRPOP with short timeouts between LPOP and PING while
    producers pipeline pushes: every element arrives exactly once and every reply belongs
    to its command (the io_uring resume bug once produced duplicates, losses and replies
    parsed from stale bytes here)."""
    lists = [f"q{i}" for i in range(4)]
    producers, pushes = 4, 200
    popped, errors = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def produce(n):
        c = server.client(socket_timeout=30)
        r = random.Random(n)
        for i in range(pushes // 8):
            p = c.pipeline(transaction=False)
            for j in range(8):
                p.lpush(r.choice(lists), f"{n}:{i}:{j}")
            p.execute()
            time.sleep(r.random() * 0.002)

    def consume(n):
        c = server.client(socket_timeout=30)
        r = random.Random(100 + n)
        try:
            while not stop.is_set():
                p = c.pipeline(transaction=False)
                kinds = [r.randint(0, 3) for _ in range(r.randint(1, 5))]
                for k in kinds:
                    if k == 0:
                        p.execute_command("BLPOP", r.choice(lists), r.choice(lists), "0.02")
                    elif k == 1:
                        p.execute_command("BRPOP", r.choice(lists), "0.01")
                    elif k == 2:
                        p.execute_command("LPOP", r.choice(lists))
                    else:
                        p.execute_command("PING")
                for k, res in zip(kinds, p.execute()):
                    if k <= 1 and res is not None:
                        assert len(res) == 2 and res[0].decode() in lists
                        with lock:
                            popped.append(res[1])
                    elif k == 2 and res is not None:
                        with lock:
                            popped.append(res)
                    elif k == 3:
                        assert res is True
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    ps = [threading.Thread(target=produce, args=(n,)) for n in range(producers)]
    cs = [threading.Thread(target=consume, args=(n,)) for n in range(8)]
    for t in ps + cs:
        t.start()
    for t in ps:
        t.join(60)
    c = server.client()
    assert wait_for(lambda: sum(c.llen(name) for name in lists) == 0, timeout=20)
    stop.set()
    for t in cs:
        t.join(60)
    assert not any(t.is_alive() for t in ps + cs), "a client hung"
    assert errors == []
    assert len(popped) == producers * pushes and len(set(popped)) == len(popped)


@pytest.mark.parametrize("io", ["uring", "epoll"])
def test_blocked_client_past_query_buffer_limit_is_closed(make_server, io):
    """A blocked client's input is not run until it wakes, but it is still held to
    client-query-buffer-limit, as in Redis: one that streams past it is closed, its
    block ends, and nothing is delivered to it afterwards."""
    s = make_server("--io", io, "--shards", "2", "--client-query-buffer-limit", "1mb")
    r = client(s)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")
    wait_blocked(r, 1)
    echo = b"*2\r\n$4\r\nECHO\r\n$1000\r\n" + b"x" * 1000 + b"\r\n"
    try:
        for _ in range(1500):
            sock.sendall(echo)
    except OSError:
        pass  # closed while we were still sending
    assert wait_for(lambda: r.info("clients")["blocked_clients"] == 0)
    try:
        assert sock.recv(65536) == b""
    except ConnectionResetError:
        pass
    sock.close()
    r.lpush("q", "a")
    assert r.lpop("q") == "a"
    assert "Closing client that reached max query buffer length" in s.output()


def test_sorted_set_and_multi_pop_reply_shapes(srv, bg):
    r = client(srv)
    f = bg.run("BZPOPMAX", "z1", "z2", 0)
    wait_blocked(r, 1)
    r.zadd("z2", {"a": 1, "b": 2})
    assert f.result(5) == ["z2", "b", 2.0]
    f = bg.run("BZMPOP", 0, 2, "z3", "z2", "MIN", "COUNT", 5)
    time.sleep(0.05)
    assert f.result(5) == ["z2", [["a", "1"]]]
    f = bg.run("BLMPOP", 0, 2, "l1", "l2", "RIGHT", "COUNT", 2)
    wait_blocked(r, 1)
    r.rpush("l2", "x", "y", "z")
    assert f.result(5) == ["l2", ["z", "y"]]
    f = bg.run("BZPOPMIN", "zz", 0, protocol=3)
    wait_blocked(r, 1)
    r.zadd("zz", {"m": 1.5})
    assert f.result(5) == ["zz", "m", 1.5]


def test_blocking_commands_inside_multi_do_not_block(srv):
    r = client(srv)
    p = r.pipeline(transaction=True)
    p.blpop(["empty"], 0).brpoplpush("empty", "d", 0).bzpopmin(["empty"], 0)
    assert p.execute() == [None, None, None]


def test_wakeups_happen_after_exec(srv, bg):
    r = client(srv)
    f = bg.run("BLPOP", "tq", 0)
    wait_blocked(r, 1)
    # Pushed and deleted in one transaction: nobody is woken.
    p = r.pipeline(transaction=True)
    p.lpush("tq", "a").delete("tq")
    p.execute()
    # Pushed and popped in one transaction: the transaction's own pop wins.
    p = r.pipeline(transaction=True)
    p.lpush("tq", "b").lpop("tq")
    assert p.execute() == [1, "b"]
    time.sleep(0.05)
    assert not f.done()
    assert r.info("clients")["blocked_clients"] == 1
    # Two pushes in one transaction: the waiter gets the list as EXEC left it.
    p = r.pipeline(transaction=True)
    p.rpush("tq", "c").rpush("tq", "d")
    p.execute()
    assert f.result(5) == ["tq", "c"]
    assert r.lrange("tq", 0, -1) == ["d"]


def test_type_change_under_a_waiter(srv, bg):
    r = client(srv)
    f = bg.run("BLPOP", "tc", 0)
    wait_blocked(r, 1)
    r.set("tc", "not a list")
    time.sleep(0.05)
    assert not f.done()
    r.delete("tc")
    r.rpush("tc", "v")
    assert f.result(5) == ["tc", "v"]


def test_client_unblock_timeout_and_error(srv, bg):
    r = client(srv)
    c = client(srv)
    cid = c.client_id()
    f = bg.pool.submit(c.blpop, ["ub"], 0)
    wait_blocked(r, 1)
    info = [x for x in r.client_list() if int(x["id"]) == cid][0]
    assert "b" in info["flags"] and info["cmd"] == "blpop"
    assert r.client_unblock(cid) == 1
    assert f.result(5) is None
    f = bg.pool.submit(c.execute_command, "BLMOVE", "ub", "d", "LEFT", "LEFT", 0)
    wait_blocked(r, 1)
    assert r.execute_command("CLIENT", "UNBLOCK", cid, "ERROR") == 1
    with pytest.raises(redis.ResponseError, match="UNBLOCKED client unblocked via CLIENT UNBLOCK"):
        f.result(5)
    assert r.client_unblock(cid) == 0        # not blocked
    assert r.client_unblock(999999) == 0     # no such client
    with pytest.raises(redis.ResponseError, match="reason should be TIMEOUT or ERROR"):
        r.execute_command("CLIENT", "UNBLOCK", cid, "MAYBE")
    # The unblocked connection is usable, and the key was never touched.
    assert c.ping() is True
    r.rpush("ub", "kept")
    assert r.lrange("ub", 0, -1) == ["kept"]


def test_disconnect_and_kill_while_blocked_lose_nothing(srv, bg):
    r = client(srv)
    victim = client(srv)
    vid = victim.client_id()
    f = bg.pool.submit(victim.blpop, ["dk"], 0)
    wait_blocked(r, 1)
    assert r.client_kill_filter(_id=vid) == 1
    with pytest.raises(redis.ConnectionError):
        f.result(5)
    wait_blocked(r, 0)
    # A client that just goes away while blocked.
    import socket
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$2\r\ndk\r\n$1\r\n0\r\n")
    wait_blocked(r, 1)
    s.close()
    wait_blocked(r, 0)
    r.rpush("dk", "survives")
    assert r.lrange("dk", 0, -1) == ["survives"]
    assert r.info("clients")["total_blocking_keys"] == 0


def test_wait_and_waitaof(srv):
    r = client(srv)
    assert r.execute_command("WAIT", 0, 0) == 0
    start = time.time()
    assert r.execute_command("WAIT", 1, 100) == 0
    assert time.time() - start >= 0.09
    assert r.execute_command("WAITAOF", 0, 0, 0) == [0, 0]
    assert r.execute_command("WAITAOF", 0, 1, 50) == [0, 0]
    with pytest.raises(redis.ResponseError, match="appendonly is disabled"):
        r.execute_command("WAITAOF", 1, 0, 0)
    with pytest.raises(redis.ResponseError, match="timeout is negative"):
        r.execute_command("WAIT", 1, -1)


def test_client_pause_write_holds_writers_not_readers(srv, bg):
    r = client(srv)
    r.set("p", "before")
    assert r.execute_command("CLIENT", "PAUSE", 5000, "WRITE") == "OK"
    writer = bg.run("SET", "p", "after")
    reader = client(srv)
    assert reader.get("p") == "before"
    time.sleep(0.1)
    assert not writer.done()
    assert r.info("clients")["paused_clients"] == 1
    assert r.execute_command("CLIENT", "UNPAUSE") == "OK"
    assert writer.result(5) is True
    assert r.get("p") == "after"
    # ALL holds everything until the deadline, which ends it by itself.
    assert r.execute_command("CLIENT", "PAUSE", 150) == "OK"
    start = time.time()
    assert reader.get("p") == "after"
    assert time.time() - start >= 0.1
    with pytest.raises(redis.ResponseError, match="timeout is negative"):
        r.execute_command("CLIENT", "PAUSE", -1)


def test_client_pause_write_holds_scripts_that_may_write_and_counts_them_blocked(srv, bg):
    r = client(srv)
    r.function_load("#!lua name=pl\nredis.register_function{function_name='ro', callback=function() return 'ro' end, "
                    "flags={'no-writes'}}\nredis.register_function('rw', function() return 'rw' end)")
    assert r.execute_command("CLIENT", "PAUSE", 5000, "WRITE") == "OK"
    held = [bg.run("EVAL", "return 1", 0), bg.run("FCALL", "rw", 0), bg.run("PUBLISH", "ch", "m")]
    # Declared read-only, these run at once.
    assert r.eval("#!lua flags=no-writes\nreturn 2", 0) == 2
    assert r.execute_command("EVAL_RO", "return 3", 0) == 3
    assert r.fcall("ro", 0) == "ro"
    assert wait_for(lambda: r.info("clients")["blocked_clients"] == 3)
    assert not any(h.done() for h in held)
    assert r.execute_command("CLIENT", "UNPAUSE") == "OK"
    assert [h.result(5) for h in held] == [1, "rw", 0]
    assert r.info("clients")["blocked_clients"] == 0
    # A pause set inside a transaction takes effect after it: its own writes run.
    p = r.pipeline(transaction=True)
    p.set("in-multi", 1)
    p.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
    p.set("also-in-multi", 2)
    assert p.execute() == [True, "OK", True]
    later = bg.run("SET", "after-multi", 3)
    assert wait_for(lambda: r.info("clients")["blocked_clients"] == 1)
    assert r.execute_command("CLIENT", "UNPAUSE") == "OK"
    assert later.result(5) is True


def test_client_blocked_on_several_shards_is_served_from_the_key_readied_first(srv, redis_server):
    """A transaction (or script) that pushes to keys of several shards serves a client
    blocked on them from the key it pushed first, as Redis serves its ready list in order,
    whatever the shards' order."""
    (high,), (low,) = keys_on(SHARDS - 1, 1, "hi"), keys_on(0, 1, "lo")

    def served(port, first, second, script):
        c = redis.Redis(port=port, decode_responses=True)
        got = {}
        t = threading.Thread(target=lambda: got.setdefault("v", redis.Redis(port=port, decode_responses=True)
                                                           .blpop([low, high], 5)))
        t.start()
        assert wait_for(lambda: c.info("clients")["blocked_clients"] == 1)
        if script:
            c.eval("redis.call('rpush', KEYS[1], 'from-first') redis.call('rpush', KEYS[2], 'from-second')", 2, first, second)
        else:
            p = c.pipeline(transaction=True)
            p.rpush(first, "from-first")
            p.rpush(second, "from-second")
            p.execute()
        t.join()
        c.delete(first, second)
        return list(got["v"])
    theirs = redis_server.connection_pool.connection_kwargs["port"]
    for first, second in ((high, low), (low, high)):
        for script in (False, True):
            assert served(srv.port, first, second, script) == [first, "from-first"] == served(theirs, first, second, script)


def test_client_pause_holds_expiry_until_it_ends(srv, bg):
    """As Redis: during CLIENT PAUSE (WRITE or ALL) keys past their TTL read as missing but
    are not deleted, neither by the periodic cycle nor on access; the first access after
    the pause deletes them. A key that expired during the pause and is written again
    afterwards is a new key."""
    r = client(srv)
    keys = ["held%d" % i for i in range(8)]  # on every shard
    p = r.pipeline(transaction=True)
    for k in keys:
        p.set(k, "v", px=10)
    p.set("rewritten", "old", px=10)
    p.execute_command("CLIENT", "PAUSE", 20000, "WRITE")
    p.execute()
    before = r.info("stats")["expired_keys"]
    time.sleep(0.3)  # several expiry cycles
    assert [r.get(k) for k in keys] == [None] * len(keys)
    assert r.exists(*keys) == 0 and r.ttl(keys[0]) == -2
    assert r.info("stats")["expired_keys"] == before
    assert r.dbsize() == len(keys) + 1  # still there, as in Redis
    writer = bg.run("SET", "rewritten", "new")
    time.sleep(0.05)
    assert not writer.done()
    assert r.execute_command("CLIENT", "UNPAUSE") == "OK"
    assert writer.result(5) is True
    assert r.get("rewritten") == "new" and r.ttl("rewritten") == -1
    assert [r.get(k) for k in keys] == [None] * len(keys)
    assert r.info("stats")["expired_keys"] == before + len(keys) + 1
    assert r.dbsize() == 1


def test_client_reply_and_no_evict(srv):
    r = client(srv)
    assert r.execute_command("CLIENT", "NO-EVICT", "on") == "OK"
    import socket
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"CLIENT REPLY OFF\r\nSET a 1\r\nCLIENT REPLY SKIP\r\nSET b 2\r\nCLIENT REPLY ON\r\nGET a\r\n")
    s.settimeout(2)
    data = b""
    while not data.endswith(b"$1\r\n1\r\n"):
        data += s.recv(100)
    assert data == b"+OK\r\n$1\r\n1\r\n"
    s.close()


def test_blocked_clients_stress_exactly_once(srv):
    """Producers and consumers (BLPOP, and BLMOVE to lists on other shards) over keys on
    every shard, with CLIENT UNBLOCK, CLIENT KILL and short timeouts thrown in: every
    element is received once, moved once, or still listed."""
    rng = random.Random(7)
    keys = [k for s in range(SHARDS) for k in keys_on(s, 2, "s")]
    producers, per_producer, consumers = 4, 500, 8
    received, moved, lock = [], [], threading.Lock()
    ids, stop = {}, threading.Event()

    def consume(n):
        rnd = random.Random(n)
        while not stop.is_set():
            c = client(srv)
            try:
                with lock:
                    ids[n] = c.client_id()
                while not stop.is_set():
                    timeout = rnd.choice([0, 0.01, 0.05, 0.2])
                    try:
                        if n % 2:
                            # Moves to this consumer's own list, on whatever shard it hashes to.
                            got = c.blmove(rnd.choice(keys), f"done{n}", timeout, "LEFT", "RIGHT")
                            if got:
                                with lock:
                                    moved.append(got)
                            continue
                        got = c.blpop(rnd.sample(keys, 3), timeout)
                    except redis.ResponseError as e:
                        assert "UNBLOCKED" in str(e)
                        continue
                    if got:
                        with lock:
                            received.append(got[1])
            except redis.ConnectionError:
                pass
            finally:
                c.close()

    def produce(n):
        c = client(srv)
        for i in range(per_producer):
            c.rpush(rng.choice(keys), f"p{n}-{i}")
            if i % 50 == 0:
                time.sleep(0.01)
        c.close()

    threads = [threading.Thread(target=consume, args=(n,)) for n in range(consumers)]
    for t in threads:
        t.start()
    control = client(srv)
    control_id = control.client_id()
    ptreads = [threading.Thread(target=produce, args=(n,)) for n in range(producers)]
    for t in ptreads:
        t.start()
    give_up = time.time() + 60
    while any(t.is_alive() for t in ptreads):
        assert time.time() < give_up, "producers stuck: " + str(control.client_list())
        with lock:
            target = ids.get(rng.randrange(consumers))
        if target is not None:
            action = rng.random()
            if action < 0.4:
                control.client_unblock(target, error=rng.random() < 0.5)
            elif action < 0.6:
                try:
                    control.client_kill_filter(_id=target)
                except redis.ConnectionError:
                    raise AssertionError(f"control {control_id} closed while killing {target}; ids={ids}; "
                                         f"clients={client(srv).client_list()}")
        time.sleep(0.002)
    for t in ptreads:
        t.join()
    time.sleep(0.3)
    stop.set()
    deadline = time.time() + 10
    while any(t.is_alive() for t in threads) and time.time() < deadline:
        # redis-py reconnects silently when it finds a killed connection in its pool,
        # so `ids` may be stale: unblock whoever the server lists as blocked.
        for c in control.client_list():
            if "b" in c["flags"]:
                control.client_unblock(int(c["id"]))
        time.sleep(0.01)
    assert not any(t.is_alive() for t in threads)
    left = [v for k in keys for v in control.lrange(k, 0, -1)]
    done = [v for n in range(consumers) for v in control.lrange(f"done{n}", 0, -1)]
    pushed = sorted(f"p{n}-{i}" for n in range(producers) for i in range(per_producer))
    # What a BLMOVE consumer was told it moved is in a destination list. (A reply can
    # be lost only with a connection the client itself dropped, which this test never does.)
    assert sorted(moved) == sorted(done)
    got = received + left + done
    missing = sorted(set(pushed) - set(got))
    duplicated = sorted({v for v in got if got.count(v) > 1})
    assert not missing and not duplicated, f"lost {missing}, duplicated {duplicated}"
    assert len(got) == len(pushed)


def test_many_blocked_clients_all_time_out(srv):
    """2,000 clients blocked with short timeouts on keys of every shard each get exactly
    one nil reply, and the server's blocked-client bookkeeping returns to zero."""
    import selectors
    import socket
    r = client(srv)
    socks = []
    sel = selectors.DefaultSelector()
    for i in range(2000):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.setblocking(False)
        timeout = b"0.%d" % (1 + i % 3)
        cmd = b"*3\r\n$5\r\nBLPOP\r\n$%d\r\nmany%d\r\n$%d\r\n%s\r\n" % (len(b"many%d" % i), i, len(timeout), timeout)
        s.sendall(cmd)
        sel.register(s, selectors.EVENT_READ, bytearray())
        socks.append(s)
    deadline = time.time() + 30
    done = 0
    while done < len(socks) and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            chunk = key.fileobj.recv(64)
            key.data.extend(chunk)
            if bytes(key.data) == b"*-1\r\n":
                sel.unregister(key.fileobj)
                done += 1
            else:
                assert b"*-1\r\n".startswith(bytes(key.data)), bytes(key.data)
    assert done == len(socks)
    info = r.info("clients")
    assert info["blocked_clients"] == 0 and info["total_blocking_keys"] == 0
    for s in socks:
        s.close()


def test_swapdb_serves_clients_blocked_in_either_database(srv):
    """SWAPDB: a client waits on a database number and a key, so once the data behind
    the number changes it is served from the new data; the databases keep their numbers
    (keyspace notifications and later blocks name the right one)."""
    r = client(srv)
    r.rpush("k", "from-db0")
    waiter = client(srv, db=1)
    with ThreadPoolExecutor(1) as pool:
        popped = pool.submit(waiter.blpop, "k", 5)
        wait_blocked(r, 1)
        assert r.swapdb(0, 1)
        assert tuple(popped.result(10)) == ("k", "from-db0")
    assert r.exists("k") == 0 and client(srv, db=1).exists("k") == 0
    r.rpush("q", "x")
    assert r.swapdb(0, 1) and client(srv, db=1).lpop("q") == "x"
    with ThreadPoolExecutor(1) as pool:
        popped = pool.submit(client(srv).blpop, "q", 5)
        wait_blocked(r, 1)
        client(srv, db=1).rpush("q", "other-db")  # not the waiter's database
        r.rpush("q", "mine")
        assert tuple(popped.result(10)) == ("q", "mine")


@pytest.mark.parametrize("io", ["uring", "epoll"])
def test_replies_written_by_the_serving_shard_reach_only_their_client(make_server, io):
    """A shard that serves a client homed on another shard writes the reply to the
    client's socket itself. Consumers pipeline PING before each BLPOP (so an earlier reply
    may still be on its way), wait on a key of their own on any shard, and now and then
    drop the connection while blocked, so descriptor numbers are reused by the next
    connection while producers push to every key: every reply arrives in order, to the
    connection whose key it came from, and the server keeps serving."""
    srv = make_server("--io", io, "--shards", SHARDS)
    consumers, generations = 12, 25
    current, lock, stop = {}, threading.Lock(), threading.Event()
    errors, served = [], [0]

    def consume(n):
        rnd = random.Random(n)
        try:
            for gen in range(generations):
                key = f"u{n}-{gen}"
                conn = redis.Connection(host="127.0.0.1", port=srv.port, socket_timeout=20)
                conn.connect()
                with lock:
                    current[n] = key
                for _ in range(rnd.randint(1, 6)):
                    conn.send_packed_command(conn.pack_commands([("PING",), ("BLPOP", key, 0)]))
                    assert conn.read_response() == b"PONG"
                    if rnd.random() < 0.2:
                        break  # vanish while blocked: the socket closes under the waiter
                    got = conn.read_response()
                    assert got[0] == key.encode() and got[1].startswith(key.encode() + b":"), (key, got)
                    with lock:
                        served[0] += 1
                with lock:
                    current.pop(n, None)
                conn.disconnect()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"consumer {n}: {e!r}")

    def produce(seed):
        rnd = random.Random(seed)
        c = srv.client()
        i = 0
        while not stop.is_set():
            with lock:
                keys = list(current.values())
            if keys:
                key = rnd.choice(keys)
                c.rpush(key, f"{key}:{i}")
                i += 1
            else:
                time.sleep(0.001)
        c.close()

    cs = [threading.Thread(target=consume, args=(n,)) for n in range(consumers)]
    ps = [threading.Thread(target=produce, args=(100 + n,)) for n in range(3)]
    for t in cs + ps:
        t.start()
    for t in cs:
        t.join(120)
    stop.set()
    for t in ps:
        t.join(30)
    assert not any(t.is_alive() for t in cs + ps), "a client hung"
    assert errors == []
    assert served[0] > consumers * generations
    r = srv.client(decode_responses=True)
    assert wait_for(lambda: r.info("clients")["blocked_clients"] == 0, timeout=10)
    assert r.ping()

"""Shard locks kept across the commands of one pipelined batch (Sources/Engine/BatchLocks.swift).

Keeping a lock set between commands must not change what any client sees: every command
stays atomic, blocked clients are served between two commands of a pipeline as Redis
serves them, and mixing kept locks with every other path that takes locks (transactions,
scripts, WATCH, blocking commands, errors) never deadlocks.
"""
import random
import threading
import time

import redis

from conftest import wait_for


def run_writers_until_readers_finish(writer, writers, reader, readers, stop):
    """Starts `writers` writer(n) threads and `readers` reader() threads, lets the writers
    run until every reader is done, and fails if any client hangs."""
    ws = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    rs = [threading.Thread(target=reader) for _ in range(readers)]
    for t in ws + rs:
        t.start()
    for t in rs:
        t.join(120)
    stop.set()
    for t in ws:
        t.join(120)
    assert not any(t.is_alive() for t in ws + rs), "clients hung"


def test_pipelined_multi_key_writes_stay_atomic(make_server):
    s = make_server("--shards", "4")
    keys = [f"group:{i}" for i in range(12)]  # no hash tag: spread over the shards
    s.client().mset({k: "0" for k in keys})
    stop = threading.Event()
    bad, errors = [], []

    def writer(n):
        c = s.client()
        i = 0
        try:
            while not stop.is_set():
                p = c.pipeline(transaction=False)
                for _ in range(16):
                    i += 1
                    p.mset({k: f"{n}:{i}" for k in keys})
                    p.incr(f"counter:{i % 7}")
                p.execute()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def reader():
        c = s.client()
        try:
            for _ in range(150):
                p = c.pipeline(transaction=False)
                for _ in range(8):
                    p.mget(keys)
                for vals in p.execute():
                    if len(set(vals)) != 1:
                        bad.append(vals)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    run_writers_until_readers_finish(writer, 3, reader, 3, stop)
    assert errors == [] and bad == []


def test_blocked_client_is_served_between_pipelined_commands(make_server):
    s = make_server("--shards", "4")
    pusher = s.client(decode_responses=True)
    for attempt in range(8):  # consumers land on different shards in turn
        consumer = s.client(decode_responses=True)
        cid = consumer.client_id()
        got = []
        t = threading.Thread(target=lambda: got.append(consumer.blpop(["jobs"], timeout=10)))
        t.start()
        assert wait_for(lambda: any(c["id"] == str(cid) and c["cmd"] == "blpop" for c in pusher.client_list()))
        p = pusher.pipeline(transaction=False)
        p.set("before", attempt)
        p.lpush("jobs", f"job{attempt}")
        p.lpop("jobs")  # the blocked client took the element before this ran, as in Redis
        p.lpush("jobs", "later")
        p.get("before")
        res = p.execute()
        t.join(10)
        assert got == [("jobs", f"job{attempt}")]
        assert res == [True, 1, None, 1, str(attempt)]
        assert pusher.lrange("jobs", 0, -1) == ["later"]
        pusher.delete("jobs")
        consumer.close()


def test_random_pipelines_mixing_every_lock_path_never_hang(make_server):
    s = make_server("--shards", "4")
    rng = random.Random(7)
    script = "redis.call('incr', KEYS[1]); return redis.call('incr', KEYS[2])"
    sha = s.client().script_load(script)
    increments = [0] * 6
    lock = threading.Lock()
    errors = []

    def one_pipeline(c, seed):
        r = random.Random(seed)
        p = c.pipeline(transaction=False)
        done = 0
        for _ in range(r.randint(1, 24)):
            k = f"n:{r.randint(0, 5)}"
            kind = r.randint(0, 11)
            if kind <= 3:
                p.incr(k)
                done += 1
            elif kind == 4:
                p.mget([f"n:{i}" for i in range(6)])
            elif kind == 5:
                p.evalsha(sha, 2, "n:0", "n:5")
                done += 2
            elif kind == 6:
                p.execute_command("BLPOP", f"empty:{r.randint(0, 3)}", "0.01")
            elif kind == 7:
                p.execute_command("WATCH", k)
                p.execute_command("UNWATCH")
            elif kind == 8:
                p.execute_command("GET")  # wrong arity: an error reply, nothing locked
            elif kind == 9:
                p.execute_command("CLIENT", "ID")
            elif kind == 10:
                p.rpush(f"list:{r.randint(0, 3)}", "x")
                p.execute_command("LTRIM", f"list:{r.randint(0, 3)}", "0", "9")
            else:
                p.execute_command("DBSIZE")
        return p, done

    def client_loop(n):
        c = s.client()
        try:
            for i in range(100):
                p, done = one_pipeline(c, rng.random() + n * 1000 + i)
                p.execute(raise_on_error=False)
                with lock:
                    increments[0] += done
                # A transaction between pipelines: its locks are taken fresh.
                with c.pipeline(transaction=True) as t:
                    t.incr("n:1")
                    t.mget(["n:2", "n:3"])
                    t.execute()
                with lock:
                    increments[0] += 1
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert errors == []
    c = s.client()
    total = sum(int(c.get(f"n:{i}") or 0) for i in range(6))
    assert total == increments[0]


def test_readers_under_shared_locks_expire_keys_as_the_owner_would(make_server):
    """Reads hold shard locks shared (ShardLock.swift) and so may not delete; a key they
    find past its TTL is deleted right after under the exclusive lock, with its event."""
    s = make_server("--shards", "2")
    r = s.client(decode_responses=True)
    r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
    r.config_set("notify-keyspace-events", "Ex")
    ps = r.pubsub()
    ps.subscribe("__keyevent@0__:expired")
    assert ps.get_message(timeout=2)["type"] == "subscribe"
    keys = [f"k{i}" for i in range(9)]  # spread over both shards
    for k in keys[:6]:
        r.set(k, "v", px=50)
    r.hset("k6", "f", "v"); r.pexpire("k6", 50)
    r.rpush("k7", "a"); r.pexpire("k7", 50)
    r.sadd("k8", "m"); r.pexpire("k8", 50)
    r.set("kept", "v")
    time.sleep(0.2)
    assert r.dbsize() == 10, "without active expiry the keys are still there"
    p = r.pipeline(transaction=False)
    p.get("k0"); p.strlen("k1"); p.exists("k2", "kept"); p.mget("k3", "k4", "kept"); p.ttl("k5")
    p.hget("k6", "f"); p.lrange("k7", 0, -1); p.sismember("k8", "m"); p.get("kept")
    assert p.execute() == [None, 0, 1, [None, None, "v"], -2, None, [], 0, "v"]
    assert r.dbsize() == 1
    assert int(r.info("stats")["expired_keys"]) == 9
    got = set()
    while len(got) < 9:
        m = ps.get_message(timeout=2)
        assert m is not None, f"expired events missing: {sorted(set(keys) - got)}"
        got.add(m["data"])
    assert got == set(keys)
    r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "1")
    r.set("short", "v", px=20)
    assert wait_for(lambda: r.dbsize() == 1), "active expiry is back on"


def test_readers_never_see_half_a_write(make_server):
    """Hashes rewritten whole by one HSET while pipelined HGETALL/HMGET/HVALS readers on
    other shards' threads read them under shared locks: every reply shows one write."""
    s = make_server("--shards", "4")
    hashes = [f"h{i}" for i in range(8)]
    fields = [f"f{j}" for j in range(12)]
    c = s.client()
    for h in hashes:
        c.hset(h, mapping={f: "0" for f in fields})
    stop = threading.Event()
    bad, errors = [], []

    def writer(n):
        w = s.client()
        i = 0
        try:
            while not stop.is_set():
                p = w.pipeline(transaction=False)
                for _ in range(16):
                    i += 1
                    p.hset(random.choice(hashes), mapping={f: f"{n}:{i}" for f in fields})
                p.execute()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def reader():
        rd = s.client()
        try:
            for _ in range(150):
                p = rd.pipeline(transaction=False)
                for _ in range(4):
                    h = random.choice(hashes)
                    p.hgetall(h); p.hmget(h, fields); p.hvals(h)
                for reply in p.execute():
                    vals = list(reply.values()) if isinstance(reply, dict) else reply
                    if len(vals) != len(fields) or len(set(vals)) != 1:
                        bad.append(reply)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    run_writers_until_readers_finish(writer, 2, reader, 4, stop)
    assert errors == [] and bad == []


def test_locks_kept_between_clients_survive_closes_and_kills(make_server):
    """A shard keeps a batch's locks for the next clients' batches of the same event-loop
    pass. Clients vanishing mid-pipeline, quitting inside one or being killed by CLIENT
    KILL in between must never leave a lock held or counted twice: the counted writers'
    increments all land, nothing hangs, and every vanished client is gone."""
    import socket
    import struct

    s = make_server("--shards", "4")
    keys = [f"c:{i}" for i in range(32)]  # no hash tag: spread over the four shards
    counted = [0]
    lock = threading.Lock()
    stop = threading.Event()
    errors = []
    doomed = []  # client ids for the killer

    def writer(n):
        c = s.client()
        r = random.Random(n)
        try:
            while not stop.is_set():
                p = c.pipeline(transaction=False)
                for _ in range(16):
                    p.incr(r.choice(keys))
                p.execute()
                with lock:
                    counted[0] += 16
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def incr_pipeline(r, count):
        out = b""
        for _ in range(count):
            k = f"junk:{r.randint(0, 99)}".encode()
            out += b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(k), k)
        return out

    def vandal(n):
        r = random.Random(1000 + n)
        for i in range(150):
            sock = socket.create_connection(("127.0.0.1", s.port))
            try:
                sock.sendall(b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n")
                reply = b""
                while not reply.endswith(b"\r\n"):
                    reply += sock.recv(64)
                with lock:
                    doomed.append(int(reply[1:-2]))
                kind = i % 4
                # WATCH and BLPOP make the close take locks itself (unwatching, leaving
                # the waiter table) after a batch that kept them.
                watch = b"*2\r\n$5\r\nWATCH\r\n$5\r\nw:%03d\r\n" % r.randint(0, 999)
                body = (watch if kind != 1 else b"") + incr_pipeline(r, r.randint(1, 40))
                if kind == 0:
                    body += b"*2\r\n$4\r\nINCR"  # cut off mid-command
                elif kind == 1:
                    body += b"*1\r\n$4\r\nQUIT\r\n" + incr_pipeline(r, 5)
                elif kind == 3:
                    body += b"*3\r\n$5\r\nBLPOP\r\n$5\r\nempty\r\n$1\r\n0\r\n"
                sock.sendall(body)
                if kind == 3:
                    time.sleep(0.002)  # blocked, or killed meanwhile
                if kind == 2:
                    # Reset instead of an orderly close.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass  # killed first: that is one of the outcomes under test
            finally:
                sock.close()

    def killer():
        c = s.client()
        while not stop.is_set():
            with lock:
                ids = doomed[:]
                doomed.clear()
            for cid in ids:
                c.execute_command("CLIENT", "KILL", "ID", cid)  # 0 when it already left
            time.sleep(0.001)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    vandals = [threading.Thread(target=vandal, args=(n,)) for n in range(3)]
    kill_thread = threading.Thread(target=killer)
    for t in writers + vandals + [kill_thread]:
        t.start()
    for t in vandals:
        t.join(120)
    stop.set()
    for t in writers + [kill_thread]:
        t.join(120)
    assert not any(t.is_alive() for t in writers + vandals + [kill_thread]), "a client hung"
    assert errors == []
    c = s.client()
    assert sum(int(c.get(k) or 0) for k in keys) == counted[0]
    assert counted[0] > 0
    # Every vandal is gone; only this client remains.
    assert wait_for(lambda: c.info("clients")["connected_clients"] == 1)

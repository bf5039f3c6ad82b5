"""Client migration: a connection whose commands keep going to another shard's keys moves
to that shard, keeping its ID, name, database and pipelined input, and CLIENT LIST /
CLIENT KILL see every client exactly once while clients move."""
import socket
import threading
import time

import pytest
import redis

from conftest import wait_for
from test_blocking import keys_on, shard_of
from test_scripting import home_shard

STREAK = 64


@pytest.fixture(params=["uring", "epoll"])
def srv2(request, make_server):
    return make_server("--io", request.param, "--shards", 2)


def migrations(r):
    return int(r.info("stats")["client_migrations"])


def remote_key(c, shards, prefix="m"):
    home = home_shard(c)
    target = (home + 1) % shards
    return keys_on(target, 1, prefix, shards)[0], home, target


def test_client_moves_to_the_shard_of_its_keys(srv2):
    c = srv2.client(decode_responses=True)
    c.client_setname("worker")
    c.execute_command("SELECT", 3)
    me = c.client_id()
    key, home, target = remote_key(c, 2)
    # Fewer than the streak: the client stays.
    for i in range(STREAK - 2):
        assert c.incr(key) == i + 1
    assert home_shard(c) == home
    # A command on the home shard restarts the count.
    c.set(keys_on(home, 1, "h", 2)[0], "x")
    for i in range(STREAK - 2):
        c.incr(key)
    assert home_shard(c) == home
    for i in range(4):
        c.incr(key)
    assert wait_for(lambda: home_shard(c) == target)
    # Same client, same state, and its data where it was.
    assert c.client_id() == me
    assert c.client_getname() == "worker"
    info = c.execute_command("CLIENT", "INFO")
    assert " db=3 " in info
    assert c.get(key) == str(2 * (STREAK - 2) + 4)
    assert srv2.client(decode_responses=True, db=3).get(key) == str(2 * (STREAK - 2) + 4)
    assert srv2.client(decode_responses=True).get(key) is None
    assert migrations(c) == 1
    # It stays put while it keeps to that shard's keys.
    for _ in range(3 * STREAK):
        c.incr(key)
    assert home_shard(c) == target
    assert migrations(c) == 1


def test_pipelined_batches_keep_their_order_across_moves(srv2):
    c = srv2.client(decode_responses=True)
    home = home_shard(c)
    a = keys_on(1 - home, 1, "a", 2)[0]
    b = keys_on(home, 1, "b", 2)[0]
    expected = {a: 0, b: 0}
    # Each batch leans on one shard long enough to pull the client over, so it moves back
    # and forth; every reply must still come back in order.
    for round_ in range(20):
        key = a if round_ % 2 == 0 else b
        p = c.pipeline(transaction=False)
        for _ in range(STREAK + 10):
            p.incr(key)
        got = p.execute()
        assert got == list(range(expected[key] + 1, expected[key] + STREAK + 11))
        expected[key] += STREAK + 10
        assert home_shard(c) == shard_of(key, 2)
    assert migrations(c) >= 19


def test_partial_command_moves_with_the_client(srv2):
    probe = srv2.client(decode_responses=True)
    s = socket.create_connection(("127.0.0.1", srv2.port))
    s.sendall(b"CLIENT INFO\r\n")
    info = s.recv(65536).decode()
    home = int(info.split("shard=")[1].split()[0])
    key = keys_on(1 - home, 1, "p", 2)[0].encode()
    incr = b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(key), key)
    # A whole streak and the first half of one more command in one write.
    s.sendall(incr * (STREAK + 1) + incr[:9])
    want = b"".join(b":%d\r\n" % i for i in range(1, STREAK + 2))
    got = b""
    while len(got) < len(want):
        got += s.recv(65536)
    assert got == want
    assert wait_for(lambda: migrations(probe) == 1)
    s.sendall(incr[9:])
    assert s.recv(100) == b":%d\r\n" % (STREAK + 2)
    s.sendall(b"CLIENT INFO\r\n")
    assert f"shard={1 - home}" in s.recv(65536).decode()
    s.close()


def test_migration_can_be_turned_off(srv2):
    c = srv2.client(decode_responses=True)
    assert c.config_get("client-migration-streak") == {"client-migration-streak": "64"}
    assert c.config_set("client-migration-streak", 0) is True
    key, home, _ = remote_key(c, 2)
    for _ in range(4 * STREAK):
        c.incr(key)
    assert home_shard(c) == home
    assert migrations(c) == 0
    with pytest.raises(redis.ResponseError):
        c.config_set("client-migration-streak", -1)


def test_clients_in_transactions_or_watching_stay(srv2):
    c = srv2.client(decode_responses=True, single_connection_client=True)
    key, home, target = remote_key(c, 2)
    assert c.execute_command("WATCH", key) is True
    for _ in range(2 * STREAK):
        c.get(key)
    assert home_shard(c) == home
    # Its streak stands: once it stops watching, it moves.
    assert c.execute_command("UNWATCH") is True
    c.get(key)
    assert home_shard(c) == target
    # Commands queued in MULTI count for nothing: they run inside EXEC.
    d = srv2.client(decode_responses=True)
    home = home_shard(d)
    key = keys_on(1 - home, 1, "t", 2)[0]
    p = d.pipeline(transaction=True)
    for _ in range(2 * STREAK):
        p.incr(key)
    assert p.execute()[-1] == 2 * STREAK
    assert home_shard(d) == home
    assert migrations(d) == 1


def test_a_consumer_follows_its_queue_and_loses_nothing(srv2):
    consumer = srv2.client(decode_responses=True)
    producer = srv2.client(decode_responses=True)
    queue, home, target = remote_key(consumer, 2, "q")
    total = 3 * STREAK
    got = []

    def consume():
        for _ in range(total):
            got.append(consumer.blpop(queue, timeout=10)[1])
    t = threading.Thread(target=consume)
    t.start()
    for i in range(total):
        producer.rpush(queue, i)
        if i % 7 == 0:
            time.sleep(0.001)
    t.join(30)
    assert not t.is_alive()
    assert got == [str(i) for i in range(total)]
    assert home_shard(consumer) == target
    assert producer.llen(queue) == 0


def test_client_list_and_kill_see_every_client_while_clients_move(make_server):
    srv = make_server("--shards", 4)
    admin = srv.client(decode_responses=True)
    keys = [keys_on(s, 1, "w", 4)[0] for s in range(4)]
    workers = [srv.client(decode_responses=True) for _ in range(8)]
    ids = [w.client_id() for w in workers]
    stop = threading.Event()
    errors = []
    done = [0] * len(workers)

    def work(i):
        w = workers[i]
        n = 0
        try:
            while not stop.is_set():
                key = keys[(i + n) % 4]
                p = w.pipeline(transaction=False)
                for _ in range(STREAK + 1):
                    p.incr(key)
                p.execute()
                n += 1
        except redis.ConnectionError:
            pass  # killed below
        except Exception as e:  # noqa: BLE001 - reported by the assertion at the end
            errors.append(e)
        done[i] = n

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: migrations(admin) >= 50, timeout=30)
        # Every walk sees each worker exactly once, wherever it is right then.
        for _ in range(100):
            listed = [int(line.split()[0][3:]) for line in admin.execute_command("CLIENT", "LIST").splitlines()]
            for i in ids:
                assert listed.count(i) == 1, (i, listed)
        # A kill by ID always finds its client, moving or not.
        for i in ids[:4]:
            assert admin.execute_command("CLIENT", "KILL", "ID", i) == 1
        assert admin.execute_command("CLIENT", "KILL", "ID", 999999) == 0
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    assert migrations(admin) >= 50
    assert all(n > 0 for n in done)
    # No increment lost or doubled: the counters hold every batch that was answered, plus
    # at most one unanswered batch per killed worker.
    total = sum(int(admin.get(k) or 0) for k in keys)
    assert sum(done) * (STREAK + 1) <= total <= (sum(done) + 4) * (STREAK + 1)


def test_scripts_count_by_their_declared_keys(srv2):
    c = srv2.client(decode_responses=True)
    home = home_shard(c)
    # A queue's keys share a hash tag, as queue libraries name them.
    tag = next(t for t in (f"{{q{i}}}" for i in range(100)) if shard_of(t + "x", 2) != home)
    waiting, active = tag + "x", tag + "y"
    move = c.register_script("local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') return v")
    c.rpush(waiting, *range(2 * STREAK))
    for i in range(STREAK + 1):
        assert move(keys=[waiting, active]) == str(i)
    assert wait_for(lambda: home_shard(c) == 1 - home)
    assert c.llen(active) == STREAK + 1
    assert migrations(c) == 1


def test_a_client_that_does_not_read_holds_up_no_walk(srv2):
    admin = srv2.client(decode_responses=True, socket_timeout=5)
    s = socket.create_connection(("127.0.0.1", srv2.port))
    s.sendall(b"CLIENT INFO\r\n")
    home = int(s.recv(65536).decode().split("shard=")[1].split()[0])
    key = keys_on(1 - home, 1, "big", 2)[0]
    value = b"v" * (1 << 20)
    admin.set(key, value)
    get = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key.encode())
    # A streak's worth of replies far larger than the socket buffers, left unread: the
    # client is marked to move, but its last send cannot finish.
    s.sendall(get * (STREAK + 1))
    time.sleep(0.3)
    for _ in range(3):
        assert admin.execute_command("CLIENT", "LIST").count("id=") == 2
    one = b"$%d\r\n%s\r\n" % (len(value), value)
    want = len(one) * (STREAK + 1)
    got = 0
    while got < want:
        chunk = s.recv(1 << 20)
        assert chunk
        got += len(chunk)
    assert got == want
    # Once its replies are out, it moves after all.
    assert wait_for(lambda: migrations(admin) == 1)
    s.sendall(b"CLIENT INFO\r\n")
    assert f"shard={1 - home}" in s.recv(65536).decode()
    s.close()


def test_client_unblock_reaches_a_client_that_moved(srv2):
    """CLIENT UNBLOCK goes to the shard the client lives on now, after it moved there."""
    c = srv2.client(decode_responses=True)
    me = c.client_id()
    key, home, target = remote_key(c, 2, "ub")
    before = migrations(c)
    for i in range(STREAK + 2):
        c.set(key, i)
    assert wait_for(lambda: home_shard(c) == target) and migrations(c) == before + 1
    other = srv2.client(decode_responses=True)
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("v", c.blpop([key + ":list"], 0)))
    t.start()
    assert wait_for(lambda: other.info("clients")["blocked_clients"] == 1)
    assert other.execute_command("CLIENT", "UNBLOCK", me) == 1
    t.join(5)
    assert got["v"] is None
    assert other.execute_command("CLIENT", "UNBLOCK", me) == 0  # no longer blocked
    assert other.execute_command("CLIENT", "UNBLOCK", 999999) == 0  # no such client

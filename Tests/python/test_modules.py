"""Modules: the example C module (modules/examples/blockdemo.c, built against the
project's berthmodule.h) loaded into berth-server over real sockets, and the same module
loaded into redis-server to prove the header ABI-compatible."""
import os
import socket
import subprocess
import threading
import time

import pytest
import redis

from conftest import ROOT, Server, free_port, wait_for

# The module berth-server loads: the plain build, or (BERTH_TEST_MODULE) the AddressSanitizer
# build that scripts/test loads into an ASan berth-server. redis-server always gets the plain one.
PLAIN_MODULE = os.path.join(ROOT, "modules", "build", "blockdemo.so")
MODULE = os.environ.get("BERTH_TEST_MODULE", PLAIN_MODULE)
LOAD_ERROR = "Error loading the extension. Please check the server logs."


@pytest.fixture(scope="module", autouse=True)
def built_modules():
    subprocess.run(["make", "-C", os.path.join(ROOT, "modules"), "-s"], check=True)
    if MODULE != PLAIN_MODULE:
        subprocess.run(["make", "-C", os.path.join(ROOT, "modules"), "-s", "asan"], check=True)


@pytest.fixture
def srv():
    s = Server("--shards", 4, "--loadmodule", MODULE, "first-arg")
    yield s
    assert s.stop() == 0, s.output()


def stats(r):
    return dict(zip(["frees", "disconnects", "timeouts"], r.execute_command("blockdemo.stats")))



def client_id_blocked_in(r, command):
    for c in r.client_list():
        if c["cmd"] == command and "b" in c["flags"]:
            return int(c["id"])
    return None


def blocked_pops_are_served(server, r, command, prefix, n):
    """n clients block in `command <prefix>i 0`; one push to each key serves each one."""
    results = {}

    def pop(i):
        results[i] = server.client(decode_responses=True).execute_command(command, f"{prefix}{i}", 0)
    threads = [threading.Thread(target=pop, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    assert wait_for(lambda: sum(1 for c in r.client_list() if c["cmd"] == command) == n)
    for i in range(n):
        r.rpush(f"{prefix}{i}", f"job{i}")
    for t in threads:
        t.join(10)
    assert results == {i: f"job{i}" for i in range(n)}


def test_loadmodule_and_module_list(srv):
    r = srv.client(decode_responses=True)
    [info] = r.execute_command("MODULE", "LIST")
    info = dict(zip(info[::2], info[1::2])) if isinstance(info, list) else info
    assert info["name"] == "blockdemo" and info["ver"] == 1
    assert info["path"] == MODULE and info["args"] == ["first-arg"]


def test_module_load_errors_and_unload(make_server):
    s = make_server("--shards", 2)
    r = s.client(decode_responses=True)
    with pytest.raises(redis.ResponseError, match="unknown command"):
        r.execute_command("blockdemo.stats")
    with pytest.raises(redis.ResponseError, match=LOAD_ERROR):
        r.execute_command("MODULE", "LOAD", "/nonexistent/mod.so")
    # OnLoad fails: nothing of the module stays behind.
    with pytest.raises(redis.ResponseError, match=LOAD_ERROR):
        r.execute_command("MODULE", "LOAD", MODULE, "fail")
    assert r.execute_command("MODULE", "LIST") == []
    with pytest.raises(redis.ResponseError, match="unknown command"):
        r.execute_command("blockdemo.stats")
    assert r.execute_command("MODULE", "LOAD", MODULE) == "OK"
    assert r.execute_command("blockdemo.stats") == [0, 0, 0]
    # The same module twice: its Init finds the name busy.
    with pytest.raises(redis.ResponseError, match=LOAD_ERROR):
        r.execute_command("MODULE", "LOAD", MODULE)
    assert "busy" in s.output() or "failed" in s.output()
    assert r.execute_command("MODULE", "UNLOAD", "blockdemo") == "OK"
    with pytest.raises(redis.ResponseError, match="unknown command"):
        r.execute_command("blockdemo.stats")
    with pytest.raises(redis.ResponseError, match="no such module"):
        r.execute_command("MODULE", "UNLOAD", "blockdemo")
    assert r.execute_command("MODULE", "LOADEX", MODULE, "ARGS", "x", "y") == "OK"
    [info] = r.execute_command("MODULE", "LIST")
    assert info[info.index("args") + 1] == ["x", "y"]


def test_thread_answers_while_the_shard_serves_others(srv):
    r = srv.client()
    other = srv.client()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("v", r.execute_command("blockdemo.random", 400)))
    t.start()
    assert wait_for(lambda: client_id_blocked_in(other, "blockdemo.random") is not None)
    # The client is blocked, not its shard: every other client keeps being served.
    for i in range(50):
        assert other.set(f"k{i}", i) and other.ping()
    assert "v" not in result
    t.join()
    assert isinstance(result["v"], int) and result["v"] > 0
    assert wait_for(lambda: stats(other)["frees"] == 1)
    # The thread's measured time (BlockedClientMeasureTimeStart/End) is in commandstats.
    cmdstat = other.info("commandstats")["cmdstat_blockdemo.random"]
    assert cmdstat["calls"] == 1 and cmdstat["usec"] >= 400_000


def test_timeout_callback_then_privdata_freed_once(srv):
    r = srv.client(decode_responses=True)
    assert r.execute_command("blockdemo.random", 600, 50) == "Request timedout"
    s = stats(r)
    assert s["timeouts"] == 1 and s["frees"] == 0  # the thread still holds the handle
    assert wait_for(lambda: stats(r)["frees"] == 1)
    time.sleep(0.3)
    assert stats(r)["frees"] == 1


def test_client_unblock_needs_a_timeout_callback(srv):
    r = srv.client(decode_responses=True)
    blocked = srv.client(decode_responses=True)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", blocked.execute_command("blockdemo.random", 3000)))
    t.start()
    assert wait_for(lambda: client_id_blocked_in(r, "blockdemo.random") is not None)
    cid = client_id_blocked_in(r, "blockdemo.random")
    assert r.client_unblock(cid) is True  # TIMEOUT: the module's timeout callback answers
    t.join()
    assert out["v"] == "Request timedout"

    def run(cmd, *args):
        try:
            out[cmd] = blocked.execute_command(cmd, *args)
        except redis.ResponseError as e:
            out[cmd] = e
    t = threading.Thread(target=run, args=("blockdemo.random", 3000))
    t.start()
    assert wait_for(lambda: client_id_blocked_in(r, "blockdemo.random") is not None)
    assert r.client_unblock(client_id_blocked_in(r, "blockdemo.random"), error=True) is True
    t.join()
    assert str(out["blockdemo.random"]) == "UNBLOCKED client unblocked via CLIENT UNBLOCK"
    # No timeout callback: CLIENT UNBLOCK answers 0 and the thread's reply still comes.
    t = threading.Thread(target=run, args=("blockdemo.slow", 300))
    t.start()
    assert wait_for(lambda: client_id_blocked_in(r, "blockdemo.slow") is not None)
    assert r.client_unblock(client_id_blocked_in(r, "blockdemo.slow")) is False
    t.join()
    assert isinstance(out["blockdemo.slow"], int)
    assert wait_for(lambda: stats(r)["frees"] == 3)


def test_disconnect_while_thread_works(srv):
    r = srv.client()
    before = stats(r)
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.sendall(b"blockdemo.random 300\r\n")
    assert wait_for(lambda: client_id_blocked_in(r, "blockdemo.random") is not None)
    sock.close()
    assert wait_for(lambda: stats(r)["disconnects"] == before["disconnects"] + 1)
    # No reply callback for a client that left, and privdata freed exactly once.
    assert wait_for(lambda: stats(r)["frees"] == before["frees"] + 1)
    time.sleep(0.3)
    assert stats(r)["frees"] == before["frees"] + 1
    assert r.ping()


def test_abort_block_after_failed_thread_start(srv):
    r = srv.client()
    with pytest.raises(redis.ResponseError, match="Can't start thread"):
        r.execute_command("blockdemo.abort")
    assert r.ping() and r.set("after", 1)
    assert client_id_blocked_in(r, "blockdemo.abort") is None


def test_block_on_keys_across_shards(srv):
    r = srv.client(decode_responses=True)
    blocked_pops_are_served(srv, r, "blockdemo.pop", "queue", 8)
    assert all(not r.exists(f"queue{i}") for i in range(8))
    # Already there: no blocking. Timeout: the timeout callback. Wrong type: the error.
    r.rpush("ready", "now")
    assert r.execute_command("blockdemo.pop", "ready", 0) == "now"
    assert r.execute_command("blockdemo.pop", "empty", 50) == "Request timedout"
    r.set("str", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.execute_command("blockdemo.pop", "str", 0)
    # On-keys privdata is freed with each outcome: 8 served, one timed out.
    assert wait_for(lambda: stats(r)["frees"] == 9)


def test_hundreds_of_blocked_module_clients(srv):
    r = srv.client()
    before = stats(r)["frees"]
    replies = []
    lock = threading.Lock()

    def worker(i):
        c = redis.Redis(port=srv.port)
        v = c.execute_command("blockdemo.random", 50 + i % 150)
        with lock:
            replies.append(v)
        c.close()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(replies) == 300 and all(isinstance(v, int) and v > 0 for v in replies)
    assert wait_for(lambda: stats(r)["frees"] == before + 300)
    assert r.info("clients")["blocked_clients"] == 0


def test_scan_from_a_thread_under_the_lock(srv):
    r = srv.client()
    r.mset({f"key:{i}": i for i in range(777)})
    assert r.execute_command("blockdemo.scan") == 777


def test_call_and_key_api(srv):
    r = srv.client(decode_responses=True)
    assert r.execute_command("blockdemo.call", "set", "a", "1") == "OK"
    assert r.execute_command("blockdemo.call", "incrby", "a", "41") == 42
    assert r.execute_command("blockdemo.call", "lrange", "nolist", "0", "-1") == []
    with pytest.raises(redis.ResponseError, match="unknown command 'nosuch', with args beginning with"):
        r.execute_command("blockdemo.call", "nosuch")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get'"):
        r.execute_command("blockdemo.call", "get")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.execute_command("blockdemo.call", "lpush", "a", "x")
    # A blocking command called from a module answers at once, as in MULTI.
    assert r.execute_command("blockdemo.call", "blpop", "nolist", "0") is None
    r.rpush("l", 1, 2, 3)
    r.pexpire("l", 100000)
    kind, length, ttl = r.execute_command("blockdemo.keyinfo", "l")
    assert (kind, length) == (2, 3) and 0 < ttl <= 100000
    assert r.execute_command("blockdemo.keyinfo", "missing") == [0, 0, -1]


def test_call_runs_connection_free_engine_commands_and_counts_them(srv):
    """CONFIG, PING, ECHO and TIME run through Call with their own replies and errors;
    commands that act on a connection answer ENOTSUP. What Call ran counts in
    commandstats, and an error it returned counts in errorstats once, when the module
    replies with it."""
    r = srv.client(decode_responses=True)
    r.config_resetstat()
    assert r.execute_command("blockdemo.call", "config", "get", "maxclients") == ["maxclients", "10000"]
    assert r.execute_command("blockdemo.call", "ping") == "PONG"
    assert r.execute_command("blockdemo.call", "echo", "hi") == "hi"
    with pytest.raises(redis.ResponseError, match=r"^unknown subcommand 'bla'. Try CONFIG HELP.$"):
        r.execute_command("blockdemo.call", "config", "bla")
    with pytest.raises(redis.ResponseError, match="not available to modules"):
        r.execute_command("blockdemo.call", "client", "list")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.set("s", "x")
        r.execute_command("blockdemo.call", "lpush", "s", "x")
    info = r.info("all")
    assert info["errorstat_ERR"] == {"count": 2} and info["errorstat_WRONGTYPE"] == {"count": 1}
    assert info["total_error_replies"] == 3
    # A container counts per subcommand, as Redis 7 does; an unknown one under the container.
    assert info["cmdstat_config|get"]["calls"] == 1 and info["cmdstat_config|get"]["failed_calls"] == 0
    assert info["cmdstat_config"]["calls"] == 1 and info["cmdstat_config"]["failed_calls"] == 1
    assert info["cmdstat_lpush"]["calls"] == 1 and info["cmdstat_lpush"]["failed_calls"] == 1
    assert info["cmdstat_blockdemo.call"]["calls"] == 6 and info["cmdstat_blockdemo.call"]["failed_calls"] == 3


def test_latency_percentiles_count_measured_background_time(srv):
    """INFO latencystats: a blocked module command is recorded when its wait ends, with
    the time its thread measured; the percentiles follow latency-tracking-info-percentiles;
    CONFIG RESETSTAT and latency-tracking no clear and stop them."""
    r = srv.client(decode_responses=True)
    r.response_callbacks.pop("INFO", None)  # the raw text
    r.config_resetstat()
    assert r.config_set("latency-tracking-info-percentiles", "50.0 99.9")
    assert r.config_get("latency-tracking-info-percentiles") == {"latency-tracking-info-percentiles": "50 99.9"}
    assert r.execute_command("blockdemo.random", 150) > 0  # the thread sleeps 150 ms, measured
    r.set("k", "v")
    raw = r.execute_command("INFO", "latencystats")
    lines = dict(l.split(":", 1) for l in raw.splitlines() if l.startswith("latency_percentiles_usec_"))
    fields = dict(f.split("=") for f in lines["latency_percentiles_usec_blockdemo.random"].split(","))
    assert list(fields) == ["p50", "p99.9"] and float(fields["p50"]) >= 150_000
    assert "latency_percentiles_usec_set" in lines
    r.config_resetstat()
    assert "latency_percentiles_usec_set" not in r.execute_command("INFO", "latencystats")
    assert r.config_set("latency-tracking", "no")
    r.set("k", "v")
    assert r.execute_command("INFO", "latencystats").strip() == "# Latencystats"
    assert r.config_set("latency-tracking", "yes")
    assert r.config_set("latency-tracking-info-percentiles", "50 99 99.9")


def test_blocking_inside_multi_is_refused(srv):
    r = srv.client()
    before = stats(r)["frees"]
    p = r.pipeline(transaction=True)
    p.execute_command("blockdemo.random", 10)
    p.ping()
    out = p.execute(raise_on_error=False)
    assert isinstance(out[0], redis.ResponseError)
    assert "Blocking module command called from transaction" in str(out[0])
    assert out[1] is True
    # The thread still unblocks its (never blocked) handle, which frees its privdata.
    assert wait_for(lambda: stats(r)["frees"] == before + 1)


def test_resp3_replies_from_a_module(srv):
    r = srv.client(protocol=3)
    assert r.execute_command("blockdemo.call", "hset", "h", "f", "v") == 1
    assert r.execute_command("blockdemo.call", "hgetall", "h") == {b"f": b"v"}


def test_same_module_binary_runs_in_redis_server():
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--loadmodule", PLAIN_MODULE, "first-arg"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        r = redis.Redis(port=port, decode_responses=True)
        assert wait_for(lambda: _pings(r))
        berth = Server("--shards", 2, "--loadmodule", MODULE, "first-arg")
        b = berth.client(decode_responses=True)
        for c in (r, b):
            assert isinstance(c.execute_command("blockdemo.random", 20), int)
            assert c.execute_command("blockdemo.random", 500, 30) == "Request timedout"
            c.rpush("q", "x")
            assert c.execute_command("blockdemo.pop", "q", 0) == "x"
            assert c.execute_command("blockdemo.pop", "q", 30) == "Request timedout"
            c.mset({f"s{i}": i for i in range(50)})
            assert c.execute_command("blockdemo.scan") == 50
            assert c.execute_command("blockdemo.call", "incrby", "n", "5") == 5
            assert c.execute_command("blockdemo.keyinfo", "n") == [1, 1, -1]
            with pytest.raises(redis.ResponseError, match="Can't start thread"):
                c.execute_command("blockdemo.abort")
            # Freed: the random reply, the timed-out random (once its thread ends), the
            # timed-out pop; the pop served at once never allocated its privdata.
            assert wait_for(lambda: c.execute_command("blockdemo.stats")[0] == 3)
        assert berth.stop() == 0
    finally:
        proc.terminate()
        proc.wait(10)


def _pings(r):
    try:
        return r.ping()
    except redis.ConnectionError:
        return False


def test_stress_every_module_block_ends_once(srv):
    """Threads answering, timeouts, CLIENT UNBLOCK and disconnects race on 200 blocked
    module clients: each live client gets exactly one reply and every privdata is freed
    exactly once."""
    import random
    r = srv.client(decode_responses=True)
    before = stats(r)
    n = 200
    outcomes = [None] * n
    closed = set()
    rng = random.Random(7)
    plans = [(rng.randint(0, 120), rng.choice([0, rng.randint(1, 120)]), rng.random() < 0.15) for _ in range(n)]

    def worker(i):
        delay, timeout, vanish = plans[i]
        sock = socket.create_connection(("127.0.0.1", srv.port))
        cmd = f"blockdemo.random {delay} {timeout}\r\n".encode()
        sock.sendall(cmd)
        if vanish:
            time.sleep(rng.random() * 0.05)
            sock.close()
            closed.add(i)
            return
        sock.settimeout(20)
        data = b""
        while not data.endswith(b"\r\n"):
            data += sock.recv(100)
        sock.settimeout(0.3)
        try:
            extra = sock.recv(100)  # nothing more may come: one outcome only
        except socket.timeout:
            extra = b""
        outcomes[i] = (data, extra)
        sock.close()

    stop = threading.Event()

    def unblocker():
        c = srv.client(decode_responses=True)
        while not stop.is_set():
            ids = [int(x["id"]) for x in c.client_list() if x["cmd"] == "blockdemo.random" and "b" in x["flags"]]
            for cid in rng.sample(ids, min(len(ids), 3)):
                c.client_unblock(cid, error=rng.random() < 0.5)
            time.sleep(0.01)

    u = threading.Thread(target=unblocker)
    u.start()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    stop.set()
    u.join()
    for i in range(n):
        if i in closed:
            continue
        data, extra = outcomes[i]
        assert extra == b"", (i, data, extra)
        assert data.startswith(b":") or data == b"+Request timedout\r\n" \
            or data == b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n", data
    assert wait_for(lambda: stats(r)["frees"] == before["frees"] + n, timeout=20), stats(r)
    time.sleep(0.3)
    after = stats(r)
    assert after["frees"] == before["frees"] + n
    assert after["disconnects"] - before["disconnects"] <= len(closed)
    assert r.info("clients")["blocked_clients"] == 0


@pytest.fixture
def swift_srv():
    s = Server("--shards", 4, "--loadmodule", "swift:swiftdemo")
    yield s
    assert s.stop() == 0, s.output()


def test_swift_module_blocks_times_out_and_frees_once(swift_srv):
    r = swift_srv.client(decode_responses=True)
    assert isinstance(r.execute_command("swiftdemo.delay", 30), int)
    assert r.execute_command("swiftdemo.delay", 400, 30) == "Request timedout"
    assert r.execute_command("swiftdemo.stats") in ([1, 1], [0, 1])
    assert wait_for(lambda: r.execute_command("swiftdemo.stats") == [2, 1])
    # CLIENT UNBLOCK uses the timeout closure; a vanished client frees once too.
    out = {}
    blocked = swift_srv.client(decode_responses=True)
    t = threading.Thread(target=lambda: out.setdefault("v", blocked.execute_command("swiftdemo.delay", 3000)))
    t.start()
    assert wait_for(lambda: client_id_blocked_in(r, "swiftdemo.delay") is not None)
    assert r.client_unblock(client_id_blocked_in(r, "swiftdemo.delay")) is True
    t.join()
    assert out["v"] == "Request timedout"
    sock = socket.create_connection(("127.0.0.1", swift_srv.port))
    sock.sendall(b"swiftdemo.delay 200\r\n")
    assert wait_for(lambda: client_id_blocked_in(r, "swiftdemo.delay") is not None)
    sock.close()
    assert wait_for(lambda: r.execute_command("swiftdemo.stats")[0] == 4, timeout=10)
    time.sleep(0.3)
    assert r.execute_command("swiftdemo.stats")[0] == 4


def test_swift_module_pop_on_keys_and_count_under_lock(swift_srv):
    r = swift_srv.client(decode_responses=True)
    blocked_pops_are_served(swift_srv, r, "swiftdemo.pop", "sq", 6)
    assert r.execute_command("swiftdemo.pop", "none", 30) == "Request timedout"
    r.mset({f"c{i}": i for i in range(123)})
    assert r.execute_command("swiftdemo.count") == 123
    with pytest.raises(redis.ResponseError, match=LOAD_ERROR):
        r.execute_command("MODULE", "LOAD", "swift:nosuch")
    with pytest.raises(redis.ResponseError, match=LOAD_ERROR):
        r.execute_command("MODULE", "LOAD", "swift:swiftdemo")


TYPE_MODULE = os.path.join(os.path.dirname(MODULE), "typedemo.so")


def check_module_type(c):
    assert c.execute_command("typedemo.incr", "n{t}", 5) == 5
    assert c.execute_command("typedemo.incr", "n{t}") == 6
    assert c.execute_command("typedemo.get", "n{t}") == 6
    assert c.execute_command("typedemo.get", "missing") is None
    assert c.type("n{t}") == "tdcounter"
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        c.get("n{t}")
    c.set("s{t}", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        c.execute_command("typedemo.incr", "s{t}")
    # The server frees a value when its key is deleted, overwritten or flushed.
    frees = c.execute_command("typedemo.frees")
    assert c.delete("n{t}") == 1
    assert c.execute_command("typedemo.frees") == frees + 1
    c.execute_command("typedemo.incr", "m{t}")
    c.set("m{t}", "plain")
    assert c.execute_command("typedemo.frees") == frees + 2
    for i in range(10):
        c.execute_command("typedemo.incr", f"k{i}")
    c.flushall()
    assert wait_for(lambda: c.execute_command("typedemo.frees") == frees + 12)


def test_module_data_type_lives_in_the_keyspace(make_server):
    s = make_server("--shards", 4, "--loadmodule", TYPE_MODULE)
    r = s.client(decode_responses=True)
    check_module_type(r)
    r.execute_command("typedemo.incr", "c")
    with pytest.raises(redis.ResponseError, match="not supported for this module type"):
        r.copy("c", "c2")
    with pytest.raises(redis.ResponseError, match="data types"):
        r.execute_command("MODULE", "UNLOAD", "typedemo")


def test_module_data_type_same_in_redis_server():
    port = free_port()
    plain = os.path.join(os.path.dirname(PLAIN_MODULE), "typedemo.so")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--loadmodule", plain], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        r = redis.Redis(port=port, decode_responses=True)
        assert wait_for(lambda: _pings(r))
        check_module_type(r)
    finally:
        proc.terminate()
        proc.wait(10)


# ---- timers, Yield and the other APIs of modules/examples/yieldtimer.c -------------------

YIELDTIMER = os.path.join(os.path.dirname(MODULE), "yieldtimer.so")


@pytest.fixture
def yt():
    s = Server("--shards", 2, "--loadmodule", YIELDTIMER)
    yield s
    assert s.stop() == 0, s.output()


def test_timer_fires_once_on_its_shard_and_can_be_stopped(yt):
    r = yt.client(decode_responses=True)
    fired = r.execute_command("yt.timer", 100, "tk", "done")
    stopped = r.execute_command("yt.timer", 100, "tk2", "never")
    remaining = r.execute_command("yt.timerinfo", fired)
    assert 0 < remaining <= 100
    assert r.execute_command("yt.stoptimer", stopped) == 1
    assert r.execute_command("yt.stoptimer", stopped) == 0
    assert r.get("tk") is None
    wait_for(lambda: r.get("tk") == "done", timeout=3)
    time.sleep(0.2)
    assert r.get("tk2") is None
    with pytest.raises(redis.ResponseError, match="no such timer"):
        r.execute_command("yt.timerinfo", fired)


def test_yield_answers_busy_and_runs_allow_busy_commands(yt):
    r = yt.client(decode_responses=True)
    r.config_set("busy-reply-threshold", 50)
    result = {}
    # Connected before the command starts, on both shards. (A connection accepted while a
    # shard runs a yielding module command and homed on that shard waits until it ends:
    # its adoption is an inbox message, which a nested poll leaves for later.)
    others = [yt.client(decode_responses=True) for _ in range(4)]
    assert {c.client_info()["shard"] for c in others} == {"0", "1"}
    busy = threading.Thread(target=lambda: result.setdefault("yields", yt.client().execute_command("yt.busy")))
    busy.start()
    time.sleep(0.3)
    for c in others:
        with pytest.raises(redis.ResponseError, match="yieldtimer is busy"):
            c.get("x")
    assert others[0].execute_command("yt.stop") == "OK"  # allow-busy: runs inside the section
    busy.join(5)
    assert not busy.is_alive() and result["yields"] > 10
    for c in others:
        assert c.ping()


def test_commands_without_locks_wait_for_a_module_operation(yt):
    """While a module command runs (yielding without letting clients in), a command that
    takes no shard lock waits for it on every shard, as in Redis: TIME sent meanwhile
    answers a time after the command's end."""
    r = yt.client(decode_responses=True)
    clients = [yt.client() for _ in range(4)]  # on both shards, connected before it starts
    assert {c.client_info()["shard"] for c in clients} == {"0", "1"}
    # Active expiry takes its shard's lock now and then: off, so only the rule tested here
    # can hold the other shard's commands back.
    r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
    result = {}
    spin = threading.Thread(target=lambda: result.setdefault("end", yt.client().execute_command("yt.spin", 1000)))
    spin.start()
    time.sleep(0.2)  # the command is running
    answers = []
    threads = [threading.Thread(target=lambda c=c: answers.append(c.time())) for c in clients]
    for t in threads:
        t.start()
    spin.join(10)
    for t in threads:
        t.join(10)
    assert len(answers) == 4
    for seconds, micros in answers:
        assert seconds * 1000 + micros // 1000 >= result["end"]
    r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "1")


def test_string_append_flags_replicate_and_missing_api(yt):
    r = yt.client(decode_responses=True)
    assert r.execute_command("yt.append", "ab", "cd") == "abcd"
    flags = r.execute_command("yt.flagsall")
    assert flags & (1 << 1) and flags & (1 << 21) and not flags & (1 << 3)  # MULTI, DENY_BLOCKING; no REPLICA
    assert r.execute_command("yt.replicate") == [0, 1, 0]
    assert r.execute_command("yt.missing") == [1, 1]
    log = yt.output()
    line = "module yieldtimer asked for API RedisModule_NoSuchFunctionAnywhere, which Berth does not provide"
    assert log.count(line) == 1

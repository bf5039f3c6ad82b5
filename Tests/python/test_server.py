"""Connection, server and protocol behaviour over real sockets: redis-py, raw sockets,
redis-cli and redis-benchmark."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import redis

from conftest import wait_for


def raw(port, payload, read_until_close=True):
    """Sends raw bytes and returns everything the server writes until it closes (or 2 s)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(2)
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            return b"", True
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out, True
                out += chunk
                if not read_until_close:
                    return out, False
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True


def test_protocol_errors_close_only_the_offender(server):
    r = server.client()
    cases = {
        b"*1\r\n$-3\r\n": b"-ERR Protocol error: invalid bulk length\r\n",
        b"*1\r\n$999999999999\r\n": b"-ERR Protocol error: invalid bulk length\r\n",
        b"*x\r\n": b"-ERR Protocol error: invalid multibulk length\r\n",
        b"*1\r\n+PING\r\n": b"-ERR Protocol error: expected '$', got '+'\r\n",
        b'SET "a\r\n': b"-ERR Protocol error: unbalanced quotes in request\r\n",
    }
    for payload, expected in cases.items():
        out, closed = raw(server.port, payload)
        assert out == expected and closed, payload
    assert r.ping() is True


def test_inline_and_pipelined_raw(server):
    out, _ = raw(server.port, b"PING\r\nSET k v\r\nGET k\r\n*1\r\n$4\r\nPING\r\n", read_until_close=False)
    deadline = time.time() + 2
    assert out.startswith(b"+PONG\r\n")
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"PING\r\nSET k v\r\nGET k\r\n*1\r\n$4\r\nPING\r\n")
        data = b""
        while data.count(b"\r\n") < 5 and time.time() < deadline:
            data += s.recv(1024)
    assert data == b"+PONG\r\n+OK\r\n$1\r\nv\r\n+PONG\r\n"


def test_unknown_command_and_arity(r):
    with pytest.raises(redis.ResponseError, match="unknown command 'NOPE', with args beginning with: 'a' 'b' "):
        r.execute_command("NOPE", "a", "b")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get' command"):
        r.execute_command("GET")
    assert r.echo("hi") == "hi" and r.ping() is True


def test_client_vanishing_mid_command_does_not_hurt_others(server):
    r = server.client()
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\nabc")
    assert r.set("k", "fine") and r.get("k") == b"fine"


def test_hello_and_resp3(server):
    r3 = server.client(protocol=3, decode_responses=True)
    assert r3.hgetall("none") == {}
    r3.hset("h", "a", "1")
    assert r3.hgetall("h") == {"a": "1"}
    r3.zadd("z", {"m": 1.5})
    assert r3.zscore("z", "m") == 1.5
    hello = r3.execute_command("HELLO", "3")
    assert hello["proto"] == 3 and hello["server"] == "redis" and hello["mode"] == "standalone"
    with pytest.raises(redis.ResponseError, match="NOPROTO"):
        r3.execute_command("HELLO", "4")


def test_auth_and_requirepass(make_server):
    s = make_server("--requirepass", "sekret", "--shards", "2")
    anon = s.client()
    with pytest.raises(redis.AuthenticationError):
        anon.get("x")
    with pytest.raises(redis.AuthenticationError):
        s.client(password="wrong").ping()
    good = s.client(password="sekret", decode_responses=True)
    assert good.ping() is True and good.set("x", "1")
    r3 = s.client(password="sekret", protocol=3)
    assert r3.ping() is True
    out, _ = raw(s.port, b"GET x\r\n", read_until_close=False)
    assert out == b"-NOAUTH Authentication required.\r\n"


def test_client_commands(server):
    a = server.client(decode_responses=True)
    b = server.client(decode_responses=True)
    a.client_setname("alpha")
    assert a.client_getname() == "alpha"
    with pytest.raises(redis.ResponseError, match="Client names cannot contain spaces"):
        a.execute_command("CLIENT", "SETNAME", "a b")
    b_id = b.client_id()
    listed = a.client_list()
    assert any(c["name"] == "alpha" for c in listed) and any(int(c["id"]) == b_id for c in listed)
    assert "id=" in a.execute_command("CLIENT", "INFO")
    assert a.client_kill_filter(_id=b_id) == 1
    with socket.create_connection(("127.0.0.1", server.port)) as victim:
        victim.sendall(b"CLIENT ID\r\n")
        victim_id = int(victim.recv(64).strip()[1:])
        assert a.client_kill_filter(_id=victim_id) == 1
        victim.settimeout(2)
        assert victim.recv(64) == b""
    assert a.ping() is True
    a.execute_command("CLIENT", "SETINFO", "LIB-NAME", "mylib")
    # CLIENT REPLY OFF / ON over a raw socket: nothing comes back while off.
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"CLIENT REPLY OFF\r\nSET q 1\r\nCLIENT REPLY ON\r\nGET q\r\n")
        s.settimeout(2)
        data = b""
        while not data.endswith(b"$1\r\n1\r\n"):
            data += s.recv(1024)
    assert data == b"+OK\r\n$1\r\n1\r\n"


def test_config_get_set(r, server):
    assert r.config_get("maxclients") == {"maxclients": "10000"}
    assert "hash-max-listpack-entries" in r.config_get("*max-*-entries*")
    assert r.config_set("hash-max-ziplist-entries", 256) is True
    assert r.config_get("hash-max-ziplist-entries") == {"hash-max-ziplist-entries": "256"}
    assert r.config_set("timeout", 0) and r.config_get("save") == {"save": ""}
    with pytest.raises(redis.ResponseError, match="Unknown option or number of arguments for CONFIG SET - 'no-such-option'"):
        r.config_set("no-such-option", "1")
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        r.config_set("databases", "4")
    with pytest.raises(redis.ResponseError, match="argument couldn't be parsed into an integer"):
        r.config_set("maxclients", "lots")
    assert r.config_set("proto-max-bulk-len", "1mb")
    out, closed = raw(server.port, b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$2097152\r\n")
    assert out == b"-ERR Protocol error: invalid bulk length\r\n" and closed
    assert r.config_resetstat() is True


def test_info_fields(r):
    r.set("a", 1)
    r.get("a")
    r.get("missing")
    info = r.info("all")
    for field in ["redis_version", "tcp_port", "uptime_in_seconds", "connected_clients", "used_memory",
                  "used_memory_human", "total_commands_processed", "keyspace_hits", "keyspace_misses",
                  "multiplexing_api", "shards"]:
        assert field in info, field
    assert info["keyspace_hits"] >= 1 and info["keyspace_misses"] >= 1
    assert info["db0"]["keys"] == 1
    assert info["cmdstat_get"]["calls"] >= 2
    assert set(r.info("keyspace").keys()) == {"db0"}


def test_command_introspection(r, server):
    count = r.command_count()
    assert count > 130
    info = r.execute_command("COMMAND", "INFO", "get")
    assert info["get"]["arity"] == 2 and info["get"]["first_key_pos"] == 1
    assert "readonly" in info["get"]["flags"]
    out, _ = raw(server.port, b"COMMAND GETKEYS MSET a 1 b 2\r\n", read_until_close=False)
    assert out == b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    out, _ = raw(server.port, b"COMMAND DOCS get\r\n", read_until_close=False)
    assert out.startswith(b"*2\r\n$3\r\nget\r\n")


def test_multi_exec_watch(r, server):
    other = server.client()
    with r.pipeline(transaction=True) as p:
        p.set("{a}x", 1).incr("{b}y").lpush("{c}l", "q").get("{a}x")
        assert p.execute() == [True, 1, 1, "1"]
    with pytest.raises(redis.WatchError):
        with r.pipeline() as p:
            p.watch("{a}x")
            other.set("{a}x", 2)
            p.multi()
            p.set("{b}y", 100)
            p.execute()
    assert r.get("{b}y") == "1"
    # Inside MULTI a command error at run time does not abort the others.
    with r.pipeline(transaction=True) as p:
        p.set("s", "str").lpush("s", "x").set("t", "ok")
        res = p.execute(raise_on_error=False)
    assert res[0] is True and isinstance(res[1], redis.ResponseError) and res[2] is True
    with pytest.raises(redis.ResponseError, match="EXEC without MULTI"):
        r.execute_command("EXEC")
    with pytest.raises(redis.ResponseError, match="DISCARD without MULTI"):
        r.execute_command("DISCARD")


def test_cross_shard_atomicity_under_concurrency(make_server):
    s = make_server("--shards", "4")
    keys = [f"{{k{i}}}" for i in range(8)]
    stop = threading.Event()
    bad = []

    def writer(n):
        c = s.client()
        i = 0
        while not stop.is_set():
            i += 1
            c.mset({k: f"{n}:{i}" for k in keys})

    def reader():
        c = s.client()
        for _ in range(1500):
            vals = c.mget(keys)
            if len(set(vals)) != 1:
                bad.append(vals)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    readers = [threading.Thread(target=reader) for _ in range(3)]
    s.client().mset({k: "0" for k in keys})
    for t in writers + readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    for t in writers:
        t.join()
    assert bad == []


def test_maxclients(make_server):
    s = make_server("--maxclients", "2")
    a, b = s.client(), s.client()
    a.ping(), b.ping()
    out, closed = raw(s.port, b"")
    assert out == b"-ERR max number of clients reached\r\n" and closed


def test_config_file_and_bad_config(tmp_path, make_server):
    good = tmp_path / "berth.conf"
    good.write_text("# comment\nshards 2\ndatabases 4\nhash-max-ziplist-entries 64\n")
    s = make_server(config_file=str(good))
    c = s.client(decode_responses=True)
    assert c.config_get("databases") == {"databases": "4"}
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        c.execute_command("SELECT", "5")
    bad = tmp_path / "bad.conf"
    bad.write_text("port 1234\nnot-an-option yes\n")
    from conftest import BINARY
    res = subprocess.run([BINARY, str(bad)], capture_output=True, text=True, timeout=20)
    assert res.returncode != 0
    assert "line 2" in res.stderr and "not-an-option" in res.stderr


def test_sigterm_and_shutdown_exit_cleanly(make_server):
    s = make_server("--shards", "2")
    c = s.client()
    c.set("x", 1)
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(10) == 0
    s2 = make_server()
    try:
        s2.client().shutdown()
    except redis.ConnectionError:
        pass
    assert s2.proc.wait(10) == 0


def test_redis_cli(server):
    cli = shutil.which("redis-cli")
    assert cli, "redis-cli must be installed (redis-tools)"
    run = lambda *a: subprocess.run([cli, "-p", str(server.port), *a], capture_output=True, text=True, timeout=30).stdout
    assert run("SET", "greeting", "hello world").strip() == "OK"
    assert run("GET", "greeting").strip() == "hello world"
    assert run("RPUSH", "l", "a", "b").strip() == "2"
    assert run("LRANGE", "l", "0", "-1").split() == ["a", "b"]
    assert "redis_version" in run("INFO", "server")
    for i in range(50):
        run("SET", f"scan:{i}", "v") if i < 3 else None
    assert sorted(run("--scan", "--pattern", "scan:*").split()) == ["scan:0", "scan:1", "scan:2"]
    piped = subprocess.run([cli, "-p", str(server.port)], input="SET p 1\nINCR p\nGET p\n",
                           capture_output=True, text=True, timeout=30).stdout.split()
    assert piped == ["OK", "2", "2"]


@pytest.mark.parametrize("shards", [1, 2])
def test_redis_benchmark_default_suite(make_server, shards):
    bench = shutil.which("redis-benchmark")
    assert bench, "redis-benchmark must be installed (redis-tools)"
    s = make_server("--shards", shards)
    res = subprocess.run([bench, "-p", str(s.port), "-q", "-n", "20000"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    lines = [l for l in res.stdout.replace("\r", "\n").split("\n") if "requests per second" in l]
    names = [l.split(":")[0].strip() for l in lines]
    for expected in ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP", "SADD",
                     "HSET", "SPOP", "ZADD", "ZPOPMIN", "LRANGE_100 (first 100 elements)", "MSET (10 keys)"]:
        assert expected in names, (expected, res.stdout[-2000:])
    assert "ERR" not in res.stdout and "error" not in res.stderr.lower()
    assert s.client().ping()


def test_idle_timeout_and_query_buffer_limit(make_server):
    s = make_server("--timeout", "1", "--client-query-buffer-limit", "1mb")
    with socket.create_connection(("127.0.0.1", s.port)) as idle:
        idle.settimeout(10)
        assert idle.recv(16) == b""  # closed by the server after about a second of silence
    out, closed = raw(s.port, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1500000\r\n" + b"x" * 1_200_000)
    assert closed and out == b""
    assert s.client().ping() is True


def test_output_buffer_limit_closes_normal_clients(make_server):
    """The normal class of client-output-buffer-limit: a reply over the hard limit closes
    its client unanswered, and a client that stops reading is closed once it has stayed
    over the soft limit; other clients, and replies under the limits, are unaffected."""
    s = make_server("--shards", "2")
    r = s.client(decode_responses=True)
    r.set("big", "x" * 200_000)
    r.set("small", "y" * 1000)
    assert r.config_set("client-output-buffer-limit", "normal 100000 0 0")
    # Raw bytes: redis-py would reconnect and retry. The replies before the big one in
    # the same batch are dropped with it, as Redis drops them.
    out, closed = raw(s.port, b"CLIENT SETNAME victim\r\nGET small\r\n")
    assert out == b"+OK\r\n$1000\r\n" + b"y" * 1000 + b"\r\n" and not closed
    out, closed = raw(s.port, b"CLIENT SETNAME victim\r\nGET big\r\n")
    assert closed and out == b""
    assert "victim" not in [c["name"] for c in r.client_list()]
    assert r.info("stats")["client_output_buffer_limit_disconnections"] == 1
    assert "closed for overcoming of output buffer limits" in s.output()
    assert r.get("small") == "y" * 1000

    # Soft limit: a client that pipelines GETs without reading stays over it.
    assert r.config_set("client-output-buffer-limit", "normal 0 100000 1")
    reader = socket.create_connection(("127.0.0.1", s.port))
    request = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 20

    def send_until_closed():
        try:
            while True:
                reader.sendall(request)
        except OSError:
            pass
    sender = threading.Thread(target=send_until_closed, daemon=True)
    sender.start()
    assert wait_for(lambda: r.info("stats")["client_output_buffer_limit_disconnections"] == 2, timeout=30)
    sender.join(10)
    assert not sender.is_alive()
    reader.close()
    assert r.config_set("client-output-buffer-limit", "normal 0 0 0")
    assert len(s.client().get("big")) == 200_000


def test_errorstats_count_error_replies_by_code(make_server, redis_server):
    berth = make_server("--shards", "2").client(decode_responses=True)
    for c in (berth, redis_server):
        c.config_resetstat()
        c.set("s", "x")
        for args in [("LPUSH", "s", "a"), ("NOSUCH",), ("GET",), ("INCR", "s"),
                     ("EVAL", "return redis.error_reply('MY_ERR custom')", "0"),
                     ("EVAL", "return {err='lowercase start'}", "0"), ("EVALSHA", "0" * 40, "0")]:
            with pytest.raises(redis.ResponseError):
                c.execute_command(*args)
        p = c.pipeline(transaction=True)
        p.incr("s")
        p.lpush("s", "x")
        with pytest.raises(redis.ResponseError):
            p.execute()
    assert berth.info("errorstats") == redis_server.info("errorstats")
    berth.config_resetstat()
    assert berth.info("errorstats") == {}


def test_command_info_describes_commands_as_redis_does(make_server, redis_server):
    """Flags (movablekeys among them), legacy key ranges and ACL categories are what
    clients route by: for every command both servers have, COMMAND INFO agrees."""
    berth = make_server("--shards", "2").client()
    theirs = redis.Redis(port=redis_server.connection_pool.connection_kwargs["port"])
    for c in (berth, theirs):
        c.response_callbacks.clear()

    def table(c):
        return {e[0]: (e[1], sorted(e[2]), e[3], e[4], e[5], sorted(e[6])) for e in c.execute_command("COMMAND")}
    ours, redis_table = table(berth), table(theirs)
    # ZRANK and ZREVRANK take Redis 7.2's WITHSCORE, so their arity is 7.2's.
    for name in (b"zrank", b"zrevrank"):
        ours[name] = (3,) + ours[name][1:]
    common = set(ours) & set(redis_table)
    assert len(common) > 190
    assert {n: ours[n] for n in common} == {n: redis_table[n] for n in common}
    assert b"movablekeys" in ours[b"zunionstore"][1] and ours[b"eval"][2:5] == (0, 0, 0)
    # Subcommands: their own arity, checked before they run.
    info = berth.execute_command("COMMAND", "INFO", "config|get", "get|key")
    assert info[0][0] == b"config|get" and info[0][1] == -3 and info[1] is None
    for args, name in [(("XINFO", "STREAM"), "xinfo|stream"), (("CONFIG", "GET"), "config|get"),
                       (("CLIENT", "KILL"), "client|kill"), (("FUNCTION", "DELETE"), "function|delete")]:
        with pytest.raises(redis.ResponseError, match=rf"wrong number of arguments for '{re.escape(name)}' command"):
            berth.execute_command(*args)


def test_command_getkeys_follows_redis_key_ranges(make_server, redis_server):
    berth = make_server("--shards", "2").client(decode_responses=True)
    for c in (berth, redis_server):
        c.response_callbacks.clear()  # redis-py parses COMMAND replies as COMMAND INFO's
    for args in [("MEMORY", "USAGE", "key"), ("EVAL", "return 1", "0"), ("EVAL", "return 1", "2", "a", "b"),
                 ("XGROUP", "CREATE", "key", "group", "$"), ("LCS", "k1", "k2"), ("GET", "key"),
                 ("ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2"),
                 ("SORT", "abc", "STORE", "invalid", "STORE", "stillbad", "STORE", "def"),
                 ("SORT", "abc", "BY", "w_*", "GET", "#", "LIMIT", "0", "2", "STORE", "out")]:
        assert berth.execute_command("COMMAND", "GETKEYS", *args) == \
            redis_server.execute_command("COMMAND", "GETKEYS", *args), args


def test_command_list_filters(make_server):
    c = make_server("--shards", "2").client(decode_responses=True)
    c.response_callbacks.clear()  # redis-py parses COMMAND replies as COMMAND INFO's
    everything = c.execute_command("COMMAND", "LIST")
    assert "set" in everything and "client|list" in everything
    assert c.execute_command("COMMAND", "LIST", "FILTERBY", "PATTERN", "set") == ["set"]
    config = c.execute_command("COMMAND", "LIST", "FILTERBY", "PATTERN", "config*")
    assert "config" in config and "config|get" in config and "set" not in config
    scripting = c.execute_command("COMMAND", "LIST", "FILTERBY", "ACLCAT", "scripting")
    assert "eval" in scripting and "script|kill" in scripting and "set" not in scripting
    assert c.execute_command("COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch") == []
    assert c.execute_command("COMMAND", "LIST", "FILTERBY", "MODULE", "nosuch") == []
    for bad in [("bad_arg",), ("filterby", "bad_arg"), ("filterby", "bad_arg", "x")]:
        with pytest.raises(redis.ResponseError, match="syntax error"):
            c.execute_command("COMMAND", "LIST", *bad)


# CLIENT and CONFIG argument errors, each compared with redis-server's reply.
CLIENT_CONFIG_CASES = [
    ["CLIENT", "KILL"], ["CLIENT", "KILL", "id", "10", "wrong_arg"], ["CLIENT", "KILL", "id", "str"],
    ["CLIENT", "KILL", "id", "-1"], ["CLIENT", "KILL", "id", "0"], ["CLIENT", "KILL", "type", "wrong_type"],
    ["CLIENT", "KILL", "user", "wrong_user"], ["CLIENT", "KILL", "skipme", "yes_or_no"], ["CLIENT", "KILL", "id", "99999"],
    ["CLIENT", "KILL", "1.2.3.4:5"], ["CLIENT", "NO-EVICT", "wrongInput"], ["CLIENT", "REPLY", "wrongInput"],
    ["CLIENT", "PAUSE", "10", "wrong"], ["CLIENT", "PAUSE", "-1"], ["CLIENT", "UNBLOCK", "x"],
    ["CLIENT", "UNBLOCK", "1", "wrong"], ["CLIENT", "SETNAME", "a b"], ["CLIENT", "ID", "x"], ["CLIENT", "LIST", "TYPE", "wrong"],
    ["CLIENT", "LIST", "ID", "a"], ["CLIENT", "LIST", "ID"], ["CLIENT", "LIST", "x"], ["CLIENT", "INFO", "x"], ["CLIENT", "FOO"],
    ["CLIENT", "GETREDIR", "x"], ["CLIENT", "TRACKING"],
    ["CONFIG", "SET", "maxmemory", "10000001", "maxmemory", "10000002"], ["CONFIG", "SET", "daemonize", "yes"],
    ["CONFIG", "SET", "hz"], ["CONFIG", "SET", "hz", "10", "timeout"], ["CONFIG", "SET", "notexist", "1"],
    ["CONFIG", "SET", "hz", "abc", "timeout", "0"], ["CONFIG", "GET"],
]


@pytest.mark.parametrize("io", ["uring", "epoll"])
def test_config_set_port_and_bind_move_the_listener(make_server, io):
    """CONFIG SET port/bind listens on the new address and stops accepting on the old;
    connected clients stay. An address the server cannot listen on fails the whole
    CONFIG SET with Redis's error, and nothing changes."""
    from conftest import free_port
    srv = make_server("--io", io)
    r = srv.client(decode_responses=True)
    r.set("k", "v")
    new_port = free_port()
    assert r.config_set("port", new_port) is True
    assert r.get("k") == "v"  # this connection stays
    moved = redis.Redis(port=new_port, decode_responses=True)
    assert moved.get("k") == "v" and moved.config_get("port") == {"port": str(new_port)}
    assert moved.info("server")["tcp_port"] == new_port
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=srv.port, socket_connect_timeout=1).ping()
    # Many connections to the new listener: the accept path was re-armed, not just once.
    clients = [redis.Redis(port=new_port) for _ in range(20)]
    assert all(c.ping() for c in clients)
    # A port in use: Redis's error, and neither the port nor the other setting changes.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        with pytest.raises(redis.ResponseError, match="argument 'port'\\) - Unable to listen on this port"):
            moved.config_set("hz", 50, "port", taken)
    assert moved.config_get("port") == {"port": str(new_port)} and moved.config_get("hz") == {"hz": "10"}
    with pytest.raises(redis.ResponseError, match="argument 'bind'\\) - Failed to bind to specified addresses"):
        moved.config_set("bind", "10.255.255.1")
    # Setting the values they already have changes nothing (Valkey's CONFIG sanity does);
    # so with Berth's own fixed settings, which refuse any other value.
    assert moved.config_set("port", new_port, "bind", "127.0.0.1") is True
    assert moved.config_set("io", io) is True
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        moved.config_set("io", "epoll" if io == "uring" else "uring")
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        moved.config_set("databases", moved.config_get("databases")["databases"])  # Redis's own: refused
    assert redis.Redis(port=new_port).ping()
    srv.port = new_port  # for the fixture's shutdown


def test_hidden_configs_answer_only_to_their_exact_name(make_server, redis_server):
    ours = make_server().client(decode_responses=True)
    for c in (ours, redis_server):
        assert "key-load-delay" not in c.config_get("*") and "key-load-delay" not in c.config_get("key-*")
        assert c.config_get("KEY-LOAD-DELAY") == {"KEY-LOAD-DELAY": "0"}  # the client's spelling
        assert c.config_get("MAXMEMORY", "maxmemor[y]", "hz") == {"MAXMEMORY": "0", "hz": "10"}
        assert c.config_set("rdb-key-save-delay", 10) is True
        assert c.config_get("rdb-key-save-delay") == {"rdb-key-save-delay": "10"}


def test_client_and_config_errors_match_redis_server(make_server, redis_server):
    berth = make_server("--shards", "2").client(decode_responses=True)
    differences = []
    for case in CLIENT_CONFIG_CASES:
        replies = []
        for c in (berth, redis_server):
            try:
                replies.append(("ok", c.execute_command(*case)))
            except redis.ResponseError as e:
                replies.append(("error", str(e)))
        if replies[0] != replies[1]:
            differences.append((case, *replies))
    assert differences == []
    assert berth.config_get("maxmemory") == {"maxmemory": "0"}  # nothing of a refused CONFIG SET applied


def test_client_list_fields(make_server):
    s = make_server("--shards", "2")
    c = s.client(decode_responses=True)
    c.execute_command("CLIENT", "SETINFO", "LIB-NAME", "redis.py")
    c.execute_command("CLIENT", "SETINFO", "LIB-VER", "1.2.3")
    for bad, message in [("valkey py", "cannot contain spaces"), ("redis.py\n", "newlines")]:
        with pytest.raises(redis.ResponseError, match=message):
            c.execute_command("CLIENT", "SETINFO", "LIB-NAME", bad)
    with pytest.raises(redis.ResponseError, match="Unrecognized"):
        c.execute_command("CLIENT", "SETINFO", "badger", "hamster")
    c.execute_command("WATCH", "w")
    before = c.execute_command("CLIENT", "INFO")
    after = c.execute_command("CLIENT", "INFO")
    fields = dict(f.split("=", 1) for f in after.split())
    assert fields["lib-name"] == "redis.py" and fields["lib-ver"] == "1.2.3" and fields["watch"] == "1"
    assert fields["cmd"] == "client|info"
    old = dict(f.split("=", 1) for f in before.split())
    # CLIENT INFO as redis-py sends it is 26 bytes; its reply went out in between.
    assert int(fields["tot-net-in"]) == int(old["tot-net-in"]) + 26
    assert int(fields["tot-net-out"]) > int(old["tot-net-out"]) + 300
    assert int(fields["tot-cmds"]) == int(old["tot-cmds"]) + 1
    c.execute_command("RESET")
    assert "lib-name=redis.py" in c.execute_command("CLIENT", "INFO")


def test_watch_flush_and_expiry_touch_only_what_they_change(make_server, redis_server):
    """FLUSHALL/FLUSHDB abort a transaction only for watched keys they deleted; a watched
    key that expires aborts it, one already expired when watched does not. Each case
    compared with redis-server."""
    berth = make_server("--shards", "2").client(decode_responses=True)

    def run(c, setup, between):
        c.flushall()
        for args in setup:
            c.execute_command(*args)
        time.sleep(0.01)  # a 1 ms TTL has run out before WATCH
        p = c.pipeline(transaction=True)
        p.watch("x")
        for args in between:
            c.execute_command(*args)
        time.sleep(0.15)
        p.multi()
        p.ping()
        try:
            return p.execute()
        except redis.WatchError:
            return "aborted"
    cases = [
        ([], [("FLUSHALL",)]),                                   # missing key: untouched
        ([("SET", "x", "1")], [("FLUSHALL",)]),                  # deleted: aborted
        ([("SET", "x", "1")], [("FLUSHDB",)]),
        ([("SELECT", "0")], [("SELECT", "0"), ("FLUSHDB",)]),
        ([("SET", "x", "1", "PX", "50")], []),                   # expires while watched: aborted
        ([("SET", "x", "1", "PX", "1")], []),                    # expired before WATCH: untouched
    ]
    for setup, between in cases:
        assert run(berth, setup, between) == run(redis_server, setup, between), (setup, between)


def test_commands_refused_by_a_busy_script_doom_the_transaction(make_server):
    s = make_server("--shards", "2", "--busy-reply-threshold", "50")
    r = s.client(decode_responses=True)
    r.set("xx", 1)
    spinner = s.client(decode_responses=True)
    t = threading.Thread(target=lambda: _ignore(lambda: spinner.eval("while true do end", 0)))
    t.start()
    other = s.client(decode_responses=True)
    assert wait_for_busy(other)
    with socket.create_connection(("127.0.0.1", s.port)) as c:
        c.sendall(b"MULTI\r\nINCR xx\r\n")
        time.sleep(0.2)
        r.execute_command("SCRIPT", "KILL")
        t.join(10)
        c.sendall(b"INCR xx\r\nEXEC\r\nPING asdf\r\n")
        data = read_through_ping(c)
    assert data.startswith(b"+OK\r\n-BUSY ") and b"-EXECABORT Transaction discarded because of previous errors." in data
    assert r.get("xx") == "1"
    # An EXEC refused while a script is busy ends the transaction.
    t = threading.Thread(target=lambda: _ignore(lambda: spinner.eval("while true do end", 0)))
    with socket.create_connection(("127.0.0.1", s.port)) as c:
        c.sendall(b"MULTI\r\nINCR xx\r\n")
        time.sleep(0.1)
        t.start()
        assert wait_for_busy(other)
        c.sendall(b"EXEC\r\n")
        time.sleep(0.2)
        r.execute_command("SCRIPT", "KILL")
        t.join(10)
        c.sendall(b"PING asdf\r\n")
        data = read_through_ping(c)
    assert b"-EXECABORT Transaction discarded because of: BUSY " in data
    assert r.get("xx") == "1"


def read_through_ping(c):
    """Everything the connection is sent up to the reply of a trailing `PING asdf`."""
    c.settimeout(5)
    data = b""
    while not data.endswith(b"$4\r\nasdf\r\n"):
        data += c.recv(65536)
    return data


def _ignore(call):
    try:
        call()
    except redis.ResponseError:
        pass


def wait_for_busy(c):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            c.get("probe")
        except redis.exceptions.BusyLoadingError:
            return True
        except redis.ResponseError as e:
            if str(e).startswith("BUSY"):
                return True
        time.sleep(0.02)
    return False


def test_client_kill_maxage_and_maxmemory_clients_percent(make_server):
    s = make_server("--shards", "2")
    c = s.client(decode_responses=True)
    for bad, message in [("str", "not an integer"), ("9999999999999999999", "not an integer"), ("-1", "greater than 0")]:
        with pytest.raises(redis.ResponseError, match=message):
            c.execute_command("CLIENT", "KILL", "MAXAGE", bad)
    old = socket.create_connection(("127.0.0.1", s.port))
    old.sendall(b"PING\r\n")
    old.settimeout(5)
    assert old.recv(100) == b"+PONG\r\n"
    time.sleep(2.1)
    young = s.client()
    young.ping()
    c.execute_command("CLIENT", "SETNAME", "asker")
    # Only the connection older than a second goes (this one is skipped as the asker).
    assert c.execute_command("CLIENT", "KILL", "MAXAGE", 1, "SKIPME", "yes") == 1
    assert old.recv(100) == b""
    assert young.ping()
    old.close()
    assert c.config_set("maxmemory-clients", "10%") and c.config_get("maxmemory-clients") == {"maxmemory-clients": "10%"}
    with pytest.raises(redis.ResponseError, match="less or equal to 100"):
        c.config_set("maxmemory-clients", "101%")


def test_smove_into_a_set_that_has_the_member_leaves_it_untouched(make_server, redis_server):
    berth = make_server("--shards", "2").client(decode_responses=True)
    outcomes = []
    for c in (berth, redis_server):
        c.flushall()
        c.sadd("src{t}", "a", "b")
        c.sadd("dst{t}", "a")
        p = c.pipeline(transaction=True)
        p.watch("dst{t}")
        p.multi()
        p.sadd("dst{t}", "c")
        other = redis.Redis(port=c.connection_pool.connection_kwargs["port"], decode_responses=True)
        assert other.smove("src{t}", "dst{t}", "a") is True
        outcomes.append((p.execute(), sorted(c.smembers("src{t}")), sorted(c.smembers("dst{t}"))))
        other.close()
    assert outcomes[0] == outcomes[1] == ([1], ["b"], ["a", "c"])

"""MONITOR over real sockets: redis-py's monitor parses every line; the feed carries the
commands of clients on every shard, in each client's order, and leaves out what Redis
leaves out; the lines equal redis-server's once times and ports are set aside."""
import re
import socket
import time

from parity import Wire


def read_lines(sock, count, timeout=5):
    """`count` monitor lines (after the +OK), as bytes without CRLF."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    while data.count(b"\r\n") < count + 1 and time.time() < deadline:
        data += sock.recv(65536)
    lines = data.split(b"\r\n")
    assert lines[0] == b"+OK", lines
    return lines[1:count + 1]


def start_monitor(port):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
    return sock


SCRIPT = [
    ("SET", "a", "x y"), ("MULTI",), ("SET", "b", "1"), ("INCR", "b"), ("EXEC",), ("AUTH", "nopass"),
    ("HELLO", "2", "AUTH", "default", "pw"), ("CONFIG", "GET", "hz"), ("FOO", "bar"), ("GET",),
    ("SET", "bin", b"\x01\n\"\\\t\xff"), ("SELECT", "3"), ("LPUSH", "q", "job"),
    ("EVAL", "return redis.call('get', KEYS[1])", "1", "a"), ("SLOWLOG", "LEN"), ("CLIENT", "SETNAME", "w"),
    ("BLPOP", "empty", "0.01"), ("SELECT", "0"), ("DEL", "a", "b", "bin"),
]
FED = 16  # lines SCRIPT produces: not CONFIG, FOO, the bad GET or SLOWLOG; EVAL adds its lua line


def normalised(line):
    """A line without its time and client port."""
    return re.sub(rb"^\+\d+\.\d{6} \[(\d+) (127\.0\.0\.1:\d+|lua)\]",
                  lambda m: b"[" + m.group(1) + b" " + (b"lua" if m.group(2) == b"lua" else b"client") + b"]", line)


def test_lines_match_redis_server(make_server, redis_server):
    ours_port = make_server("--shards", 2).port
    theirs_port = redis_server.connection_pool.connection_kwargs["port"]
    seen = []
    for port in (ours_port, theirs_port):
        monitor = start_monitor(port)
        time.sleep(0.2)
        client = Wire(port)
        for args in SCRIPT:
            client.call(*args)
        seen.append([normalised(l) for l in read_lines(monitor, FED)])
        client.close()
        monitor.close()
    assert seen[0] == seen[1]
    assert seen[0][0] == b'[0 client] "SET" "a" "x y"'
    assert b'[0 client] "SET" "bin" "\\x01\\n\\"\\\\\\t\\xff"' in seen[0]
    assert b'[0 lua] "get" "a"' not in seen[0] and b'[3 lua] "get" "a"' in seen[0]


def test_redis_py_monitor_sees_clients_of_every_shard_in_order(make_server):
    s = make_server("--shards", 4)
    r = s.client(decode_responses=True)
    with r.monitor() as m:
        writers = [s.client() for _ in range(4)]  # spread over the shards by the acceptor
        for i in range(50):
            for n, w in enumerate(writers):
                w.set("key:%d:%d" % (n, i), i)  # keys on every shard
        seen = {n: [] for n in range(4)}
        while sum(map(len, seen.values())) < 200:
            cmd = m.next_command()
            assert cmd["db"] == 0 and cmd["client_address"] == "127.0.0.1"
            parts = cmd["command"].split()
            if parts[0] == "CLIENT":
                continue  # redis-py's CLIENT SETINFO as each writer connects
            assert parts[0] == "SET"
            n, i = map(int, parts[1].split(":")[1:])
            seen[n].append(i)
        # Each client's commands arrive in the order it sent them, whichever shard ran them.
        assert all(seen[n] == list(range(50)) for n in range(4)), seen
        flags = {c["id"]: c["flags"] for c in r.client_list()}
        assert any("O" in f for f in flags.values())
        for w in writers:
            w.close()


def test_closing_the_monitor_stops_the_feed_and_others_keep_working(make_server):
    s = make_server("--shards", 2)
    c = s.client(decode_responses=True)
    c.ping()  # connected (and its handshake done) before the monitor starts
    monitor = start_monitor(s.port)
    time.sleep(0.1)
    c.set("x", 1)
    assert read_lines(monitor, 1)[0].endswith(b'"SET" "x" "1"')
    monitor.close()
    deadline = time.time() + 5
    while any("O" in x["flags"] for x in c.client_list()) and time.time() < deadline:
        time.sleep(0.05)
    assert not any("O" in x["flags"] for x in c.client_list())
    for i in range(100):
        c.incr("after")
    assert c.get("after") == "100"
    # RESET ends monitoring too: the connection answers plain commands again.
    sock = start_monitor(s.port)
    sock.sendall(b"*1\r\n$5\r\nRESET\r\n*1\r\n$4\r\nPING\r\n")
    time.sleep(0.3)
    sock.settimeout(2)
    assert sock.recv(1000) == b"+OK\r\n+RESET\r\n+PONG\r\n"
    sock.close()


def test_a_monitor_that_does_not_read_is_closed_by_the_replica_output_limit(make_server):
    s = make_server("--shards", 2)
    c = s.client(decode_responses=True)
    c.config_set("client-output-buffer-limit", "slave 200000 0 0")
    monitor = start_monitor(s.port)  # never reads its feed
    monitor.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    time.sleep(0.1)
    big = "x" * 20_000
    for i in range(2000):  # 40 MB of feed, far past what the sockets can buffer
        c.set("k%d" % (i % 10), big)
        if i % 100 == 0 and not any("O" in x["flags"] for x in c.client_list()):
            break
    deadline = time.time() + 5
    while any("O" in x["flags"] for x in c.client_list()) and time.time() < deadline:
        c.set("k", big)
        time.sleep(0.01)
    assert not any("O" in x["flags"] for x in c.client_list())
    assert c.get("k0") == big
    monitor.close()

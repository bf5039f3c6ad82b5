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
    return argv + ["--port", str(port), "--loglevel", "warning"]


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


@pytest.mark.parametrize("abstract", [False, True], ids=["path-socket", "abstract-socket"])
def test_exec_start_notifies_ready_status_and_stopping(abstract):
    listener = NotifyListener(abstract)
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=listener.address)
    proc = subprocess.Popen(exec_start(BINARY, port), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready = listener.until("READY")
        assert ready["READY"] == "1"
        assert accepts(port), "READY=1 came before the port accepted connections"
        assert ready["MAINPID"] == str(proc.pid)
        assert "shards" in ready["STATUS"] and f"port {port}" in ready["STATUS"]
        proc.send_signal(signal.SIGTERM)
        stopping = listener.until("STOPPING")
        assert stopping["STOPPING"] == "1"
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_second_sigterm_exits_at_once():
    port = free_port()
    proc = subprocess.Popen(exec_start(BINARY, port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while not accepts(port) and time.time() < deadline:
            time.sleep(0.05)
        # A shard busy in DEBUG SLEEP holds the graceful shutdown up.
        busy = socket.create_connection(("127.0.0.1", port))
        busy.sendall(b"DEBUG SLEEP 5\r\n")
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert proc.poll() is None, "the first SIGTERM should wait for the busy shard"
        start = time.time()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(3) != 0
        assert time.time() - start < 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_closes_blocked_clients_and_exits_0():
    port = free_port()
    proc = subprocess.Popen(exec_start(BINARY, port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while not accepts(port) and time.time() < deadline:
            time.sleep(0.05)
        blocked = socket.create_connection(("127.0.0.1", port))
        blocked.sendall(b"BLPOP nothing 0\r\n")
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        blocked.settimeout(10)
        assert blocked.recv(100) == b""  # closed, as Redis closes blocked clients at shutdown
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
    proc = subprocess.Popen([binary, "--port", str(port), "--shards", "2", "--loglevel", "warning"])
    try:
        deadline = time.time() + 20
        while not accepts(port) and time.time() < deadline:
            time.sleep(0.05)
        assert accepts(port)
        out = subprocess.run(["redis-cli", "-p", str(port), "RPUSH", "q", "job"], capture_output=True, text=True)
        assert out.stdout.strip() == "1"
        out = subprocess.run(["redis-cli", "-p", str(port), "BLPOP", "q", "1"], capture_output=True, text=True)
        assert out.stdout.split() == ["q", "job"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


@pytest.mark.skipif(not (os.path.isdir("/run/systemd/system") and os.geteuid() == 0 and shutil.which("systemctl")),
                    reason="this machine does not run systemd; the ExecStart tests above cover the unit")
def test_unit_under_systemd():
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

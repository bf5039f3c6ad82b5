"""The append-only file over real sockets: Redis 7's multi-part layout, kill -9 with each
fsync policy, BGREWRITEAOF, truncated tails, CONFIG SET appendonly, and files that
redis-server 7.0 and redis-check-aof read (and Berth reads theirs)."""
import os
import random
import signal
import shutil
import subprocess
import threading
import time

import pytest
import redis

from conftest import BINARY, free_port, wait_for
from dataset import dump, fill
from test_persistence import LIBRARY, start_redis, stop


def check_aof(directory):
    out = subprocess.run(["redis-check-aof", str(directory / "appendonly.aof.manifest")], capture_output=True, text=True)
    assert out.returncode == 0 and "All AOF files and manifest are valid" in out.stdout, out.stdout + out.stderr


def manifest(directory):
    return (directory / "appendonly.aof.manifest").read_text().split("\n")


@pytest.mark.parametrize("policy", ["always", "everysec"])
def test_kill_9_loses_no_acknowledged_write(make_server, tmp_path, policy):
    """Writers on several connections (and shards) count what was acknowledged; the
    server is killed with SIGKILL in the middle; after a restart every acknowledged
    INCR and RPUSH is there, in order (with everysec, after a second's pause, the
    fsync that everysec promises has happened)."""
    s = make_server("--dir", tmp_path, "--appendonly", "yes", "--appendfsync", policy, "--shards", 2)
    acked = {}
    stop_at = time.time() + 1.5
    errors = []

    def writer(w):
        c = s.client()
        n = 0
        try:
            while time.time() < stop_at:
                c.incr(f"counter:{w}")
                c.rpush(f"list:{w}", n)
                n += 1
                acked[w] = n
        except redis.ConnectionError:
            pass
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    if policy == "always":
        time.sleep(random.uniform(0.5, 1.0))
        s.proc.send_signal(signal.SIGKILL)
    for t in threads:
        t.join()
    if policy == "everysec":
        time.sleep(1.5)
        s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    assert not errors and sum(acked.values()) > 100
    again = make_server("--dir", tmp_path, "--appendonly", "yes", "--shards", 3)
    c = again.client()
    for w, n in acked.items():
        assert int(c.get(f"counter:{w}")) >= n
        got = [int(x) for x in c.lrange(f"list:{w}", 0, -1)]
        assert got[:n] == list(range(n)) and got == list(range(len(got)))
    check_aof(tmp_path / "appendonlydir")


def test_everything_replays_to_the_same_keyspace_and_redis_server_reads_it(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--appendonly", "yes", "--shards", 3)
    r = s.client()
    fill(r)
    r.function_load(LIBRARY)
    # Scripts, transactions, a served blocked client and expiries replay as effects.
    r.eval("redis.call('set', 'from-script', '1'); redis.call('incr', 'from-script')", 0)
    p = r.pipeline(transaction=True)
    p.lpush("q", "a", "b")
    p.lpop("q")
    p.execute()
    blocked = s.client()
    t = threading.Thread(target=lambda: blocked.blpop("waiting", timeout=5))
    t.start()
    time.sleep(0.2)
    r.rpush("waiting", "x", "y")
    t.join()
    r.set("short", "v", px=50)
    time.sleep(0.2)
    assert r.get("short") is None
    r.spop("set:small")
    original = dump(s.port)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    check_aof(tmp_path / "appendonlydir")
    again = make_server("--dir", tmp_path, "--appendonly", "yes")
    assert dump(again.port) == original
    assert again.client().fcall("kept", 0) == b"still here"
    again.stop()
    # redis-server 7.0 loads the same directory.
    copy = tmp_path / "redis"
    shutil.copytree(tmp_path / "appendonlydir", copy / "appendonlydir")
    proc, port = start_redis(copy, "--appendonly", "yes")
    try:
        assert dump(port) == original
    finally:
        stop(proc)


def test_berth_loads_the_append_only_file_redis_server_writes(make_server, tmp_path):
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--dir", str(tmp_path),
                             "--appendonly", "yes", "--appendfsync", "always"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        ref = redis.Redis(port=port)
        assert wait_for(lambda: _pings(ref))
        fill(ref)
        ref.bgrewriteaof()
        assert wait_for(lambda: ref.info("persistence")["aof_rewrite_in_progress"] == 0, timeout=20)
        ref.set("after-rewrite", "1")
        ref.rpush("list:small", "more")
        original = dump(port)
    finally:
        proc.kill()
        proc.wait(10)
    s = make_server("--dir", tmp_path, "--appendonly", "yes", "--shards", 2)
    assert dump(s.port) == original


def _pings(r):
    try:
        return r.ping()
    except redis.ConnectionError:
        return False


def test_bgrewriteaof_makes_a_new_base_and_drops_the_old_files(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--appendonly", "yes", "--shards", 2)
    r = s.client()
    for i in range(2000):
        r.set(f"k{i}", i)
    assert manifest(tmp_path / "appendonlydir")[:2] == ["file appendonly.aof.1.base.rdb seq 1 type b",
                                                       "file appendonly.aof.1.incr.aof seq 1 type i"]
    stop_writing = threading.Event()
    writes = []

    def writer():
        c = s.client()
        n = 0
        while not stop_writing.is_set():
            c.incr("during")
            n += 1
        writes.append(n)
    t = threading.Thread(target=writer)
    t.start()
    assert r.bgrewriteaof() is True
    assert wait_for(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0, timeout=30)
    time.sleep(0.1)
    stop_writing.set()
    t.join()
    info = r.info("persistence")
    assert info["aof_last_bgrewrite_status"] == "ok" and info["aof_rewrites"] == 1 and info["aof_enabled"] == 1
    files = sorted(os.listdir(tmp_path / "appendonlydir"))
    assert files == ["appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof", "appendonly.aof.manifest"]
    check_aof(tmp_path / "appendonlydir")
    original = dump(s.port)
    assert int(r.get("during")) == writes[0]
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    again = make_server("--dir", tmp_path, "--appendonly", "yes")
    assert dump(again.port) == original


def test_a_truncated_tail_is_dropped_only_when_aof_load_truncated_allows(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--appendonly", "yes")
    r = s.client()
    r.set("whole", "1")
    r.execute_command("MULTI")
    s.stop()
    incr = tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof"
    whole = incr.read_bytes()
    # A crash in the middle of a command, and one in the middle of a transaction.
    for tail in (b"*3\r\n$3\r\nSET\r\n$4\r\nhalf", b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$2\r\nin\r\n$1\r\n1\r\n"):
        incr.write_bytes(whole + tail)
        out = subprocess.run([BINARY, "--port", str(free_port()), "--dir", str(tmp_path), "--appendonly", "yes",
                              "--aof-load-truncated", "no"], capture_output=True, text=True, timeout=20)
        assert out.returncode == 1 and "truncated" in out.stdout + out.stderr, out.stdout
        again = make_server("--dir", tmp_path, "--appendonly", "yes", "--loglevel", "notice")
        c = again.client()
        assert c.get("whole") == b"1" and c.get("half") is None and c.get("in") is None
        assert "AOF loaded anyway because aof-load-truncated is enabled" in again.output()
        again.stop()
        assert incr.read_bytes()[:len(whole)] == whole
    # Damage that is not a truncation stops the start whatever the option says.
    incr.write_bytes(whole + b"garbage\r\n")
    out = subprocess.run([BINARY, "--port", str(free_port()), "--dir", str(tmp_path), "--appendonly", "yes"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 1 and "Bad file format reading the append only file" in out.stdout + out.stderr


def test_config_set_appendonly_turns_the_file_on_and_off(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--shards", 2)
    r = s.client()
    fill(r)
    assert r.info("persistence")["aof_enabled"] == 0
    assert r.config_set("appendonly", "yes") is True
    assert wait_for(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0, timeout=20)
    r.set("after", "on")
    assert r.info("persistence")["aof_enabled"] == 1
    check_aof(tmp_path / "appendonlydir")
    original = dump(s.port)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    again = make_server("--dir", tmp_path, "--appendonly", "yes")
    c = again.client()
    assert dump(again.port) == original
    assert c.config_set("appendonly", "no") is True
    c.set("not-logged", "1")
    assert c.info("persistence")["aof_enabled"] == 0
    assert b"not-logged" not in (tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof").read_bytes()


def test_appendonly_starts_from_an_existing_rdb_file(make_server, tmp_path):
    s = make_server("--dir", tmp_path)
    r = s.client()
    fill(r)
    original = dump(s.port)
    r.save()
    s.stop()
    again = make_server("--dir", tmp_path, "--appendonly", "yes")
    assert dump(again.port) == original
    check_aof(tmp_path / "appendonlydir")


def test_the_files_grow_into_an_automatic_rewrite(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--appendonly", "yes", "--auto-aof-rewrite-min-size", "100kb",
                    "--auto-aof-rewrite-percentage", "100")
    r = s.client()
    pipe = r.pipeline(transaction=False)
    for i in range(5000):
        pipe.set(f"key:{i % 50}", "x" * 100)
    pipe.execute()
    assert wait_for(lambda: r.info("persistence")["aof_rewrites"] >= 1, timeout=20)
    assert wait_for(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0, timeout=20)
    # The base holds 50 keys, not 5,000 writes.
    assert 0 < r.info("persistence")["aof_base_size"] < 20_000
    assert "type b" in manifest(tmp_path / "appendonlydir")[0] and ".1.base" not in manifest(tmp_path / "appendonlydir")[0]
    check_aof(tmp_path / "appendonlydir")


def test_writes_stop_with_misconf_when_the_file_cannot_be_written(make_server, tmp_path):
    """A full disk, simulated with a file size limit: the failed write is not
    acknowledged as durable, writes answer -MISCONF, and once the file can grow again
    everything is written and writes go on."""
    import resource
    s = make_server("--dir", tmp_path, "--appendonly", "yes", "--appendfsync", "everysec")
    r = s.client()
    r.set("before", "1")
    incr = tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof"
    assert wait_for(lambda: incr.stat().st_size > 0)  # drained every 10 ms
    size = incr.stat().st_size
    limit = size + 200
    # RLIMIT_FSIZE of the running server (prlimit is util-linux's).
    subprocess.run(["prlimit", "--pid", str(s.proc.pid), f"--fsize={limit}:"], check=True)
    r.set("big", "x" * 1000)  # applied in memory; its write fails
    assert wait_for(lambda: r.info("persistence")["aof_last_write_status"] == "err", timeout=5)
    with pytest.raises(redis.ResponseError, match="MISCONF Errors writing to the AOF file"):
        r.set("refused", "1")
    assert r.get("before") == b"1"
    assert incr.stat().st_size <= limit
    assert incr.read_bytes().endswith(b"\r\n")  # no half command left behind
    subprocess.run(["prlimit", "--pid", str(s.proc.pid), "--fsize=unlimited:"], check=True)
    assert wait_for(lambda: r.info("persistence")["aof_last_write_status"] == "ok", timeout=5)
    assert r.set("after", "1") is True
    time.sleep(1.2)  # everysec: within a second it is on disk
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    again = make_server("--dir", tmp_path, "--appendonly", "yes")
    c = again.client()
    assert c.get("big") == b"x" * 1000 and c.get("after") == b"1" and c.get("refused") is None


def test_waitaof_answers_with_the_local_fsync(make_server, tmp_path):
    plain = make_server()
    c = plain.client()
    with pytest.raises(redis.ResponseError, match="WAITAOF cannot be used when numlocal is set but appendonly is disabled"):
        c.execute_command("WAITAOF", 1, 0, 0)
    assert c.execute_command("WAITAOF", 0, 0, 0) == [0, 0]
    s = make_server("--dir", tmp_path, "--appendonly", "yes", "--appendfsync", "no")
    r = s.client()
    r.set("k", "v")
    assert r.execute_command("WAITAOF", 1, 0, 0) == [1, 0]
    # Nothing can acknowledge for replicas: the timeout answers, with the local count.
    assert r.execute_command("WAITAOF", 1, 1, 100) == [1, 0]
    assert b"k" in (tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof").read_bytes()


def test_debug_loadaof_replays_the_file_into_an_emptied_keyspace(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--appendonly", "yes", "--shards", 2)
    r = s.client()
    fill(r)
    r.function_load(LIBRARY)
    original = dump(s.port)
    assert r.execute_command("DEBUG", "LOADAOF") == b"OK"
    assert dump(s.port) == original
    assert r.fcall("kept", 0) == b"still here"
    # The replay wrote nothing new: a restart replays the same file to the same keyspace.
    r.set("after", "1")
    original = dump(s.port)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    again = make_server("--dir", tmp_path, "--appendonly", "yes")
    assert dump(again.port) == original


def test_appendfsync_always_under_many_clients_that_move_between_shards(make_server, tmp_path):
    """redis-benchmark's 50 clients all push to one list (so they migrate to its shard)
    while their replies wait for fsyncs: every push acknowledged is in the list, and
    again after kill -9 and a restart. (A connection moving with replies still held for
    an fsync once crashed the server.)"""
    s = make_server("--dir", tmp_path, "--appendonly", "yes", "--appendfsync", "always", "--shards", 2)
    out = subprocess.run(["redis-benchmark", "-p", str(s.port), "-c", "50", "-n", "20000", "-P", "1", "-t", "lpush", "-q"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    r = s.client()
    assert r.llen("mylist") == 20000
    assert int(r.info("stats")["client_migrations"]) > 0
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    again = make_server("--dir", tmp_path, "--appendonly", "yes", "--shards", 2)
    assert again.client().llen("mylist") == 20000


def test_commands_a_module_propagates_replay_through_the_module(make_server, tmp_path):
    """yt.replicate propagates `SET k v` (Replicate) and itself (ReplicateVerbatim) in a
    MULTI/EXEC block: the replay runs the module's own command through the module, on a
    shard, at start and in DEBUG LOADAOF."""
    from conftest import ROOT
    subprocess.run(["make", "-C", os.path.join(ROOT, "modules"), "-s"], check=True)
    module = os.path.join(ROOT, "modules", "build", "yieldtimer.so")
    s = make_server("--dir", tmp_path, "--appendonly", "yes", "--loadmodule", module, "--shards", 2)
    r = s.client()
    assert r.execute_command("yt.replicate") == [0, 1, 0]
    assert wait_for(lambda: b"yt.replicate" in (tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof").read_bytes())
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    again = make_server("--dir", tmp_path, "--appendonly", "yes", "--loadmodule", module, "--shards", 2)
    c = again.client()
    assert c.get("k") == b"v"
    assert c.execute_command("DEBUG", "LOADAOF") == b"OK"
    assert c.get("k") == b"v"
    # Its replay propagated nothing more: the file still holds one yt.replicate.
    assert (tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof").read_bytes().count(b"yt.replicate") == 1

"""RDB snapshots over real sockets: SAVE, BGSAVE, save points, the save at shutdown,
-MISCONF, and files that redis-server 7.0 (Debian's) and redis-check-rdb accept."""
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import redis

from conftest import free_port, wait_for
from dataset import dump, fill


def start_redis(directory, *args):
    """redis-server 7.0 on `directory` (loading its dump.rdb); returns (process, port)."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--dir", str(directory), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def up():
        try:
            return redis.Redis(port=port).info("persistence")["loading"] == 0
        except (redis.ConnectionError, redis.BusyLoadingError):
            return False
    if not wait_for(up, timeout=30):
        proc.kill()
        raise AssertionError("redis-server did not load: " + proc.stdout.read().decode(errors="replace"))
    return proc, port


def stop(proc):
    proc.terminate()
    proc.wait(10)


def check_rdb(path):
    out = subprocess.run(["redis-check-rdb", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "RDB looks OK" in out.stdout, out.stdout + out.stderr
    return out.stdout


@pytest.mark.parametrize("shards", [1, 3])
def test_save_writes_a_file_redis_server_loads_with_identical_contents(make_server, tmp_path, shards):
    s = make_server("--shards", shards, "--dir", tmp_path)
    r = s.client()
    fill(r)
    original = dump(s.port)
    assert r.save() is True
    report = check_rdb(tmp_path / "dump.rdb")
    assert "RDB version 10" in report or "'redis-ver'" in report or "redis-ver" in report
    proc, port = start_redis(tmp_path)
    try:
        assert dump(port) == original
    finally:
        stop(proc)


def test_rdbcompression_and_rdbchecksum_options_are_honoured(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--rdbcompression", "no", "--rdbchecksum", "no")
    r = s.client()
    r.set("long", "abc" * 1000)
    r.save()
    data = (tmp_path / "dump.rdb").read_bytes()
    assert b"abc" * 1000 in data  # stored as is
    assert data[-8:] == b"\x00" * 8  # no checksum
    r.config_set("rdbcompression", "yes")
    r.config_set("rdbchecksum", "yes")
    r.save()
    data = (tmp_path / "dump.rdb").read_bytes()
    assert b"abc" * 1000 not in data and len(data) < 1000
    assert data[-8:] != b"\x00" * 8
    check_rdb(tmp_path / "dump.rdb")


def test_bgsave_is_one_instant_across_shards_while_writers_run(make_server, tmp_path):
    """Transaction n increments `a` and `b` (on different shards), deletes old:n,
    overwrites changed:n and creates new:n, while BGSAVE walks 4 shards. The file must
    hold one instant: a == b == m, the first m old keys gone and the rest as they were,
    the first m changed keys changed, exactly the first m new keys."""
    s = make_server("--shards", 4, "--dir", tmp_path)
    r = s.client()
    total = 60_000
    pipe = r.pipeline(transaction=False)
    for i in range(total):
        pipe.set(f"old:{i}", i)
        pipe.set(f"changed:{i}", i)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    stop_writing = threading.Event()
    rounds = []

    def writer():
        c = s.client()
        n = 0
        while not stop_writing.is_set() and n < total:
            p = c.pipeline(transaction=True)
            p.incr("a")
            p.incr("b")
            p.delete(f"old:{n}")
            p.set(f"changed:{n}", "changed")
            p.set(f"new:{n}", n)
            p.execute()
            n += 1
        rounds.append(n)
    t = threading.Thread(target=writer)
    t.start()
    assert wait_for(lambda: int(r.get("a") or 0) > 50)
    r.bgsave()
    assert wait_for(lambda: r.info("persistence")["rdb_bgsave_in_progress"] == 0, timeout=60)
    written_during = int(r.get("a"))
    stop_writing.set()
    t.join()
    assert r.info("persistence")["rdb_last_bgsave_status"] == "ok"
    proc, port = start_redis(tmp_path)
    try:
        loaded = redis.Redis(port=port)
        a, b = loaded.get("a"), loaded.get("b")
        assert a is not None and a == b
        m = int(a)
        assert 0 < m <= written_during
        old = loaded.mget([f"old:{i}" for i in range(total)])
        assert old[:m] == [None] * m and old[m:] == [str(i).encode() for i in range(m, total)]
        changed = loaded.mget([f"changed:{i}" for i in range(total)])
        assert changed[:m] == [b"changed"] * m and changed[m:] == [str(i).encode() for i in range(m, total)]
        assert loaded.dbsize() == 2 + 2 * total - m + m
        assert loaded.exists(f"new:{m - 1}") == 1 and loaded.exists(f"new:{m}") == 0
    finally:
        stop(proc)


def test_save_points_start_a_background_save(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--save", "1 1", "--loglevel", "notice")
    r = s.client()
    before = r.lastsave()
    assert r.info("persistence")["rdb_changes_since_last_save"] == 0
    r.set("k", "v")
    assert r.info("persistence")["rdb_changes_since_last_save"] >= 1
    assert wait_for(lambda: (tmp_path / "dump.rdb").exists(), timeout=10)
    assert wait_for(lambda: r.info("persistence")["rdb_changes_since_last_save"] == 0, timeout=10)
    assert r.lastsave() >= before
    assert "changes in 1 seconds. Saving..." in s.output()
    check_rdb(tmp_path / "dump.rdb")


def test_failed_save_refuses_writes_until_a_save_succeeds(make_server, tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    s = make_server("--dir", target, "--save", "3600 1")
    r = s.client()
    r.set("k", "v")
    target.rmdir()
    with pytest.raises(redis.ResponseError):
        r.save()
    info = r.info("persistence")
    assert info["rdb_last_bgsave_status"] == "err"
    with pytest.raises(redis.ResponseError, match="MISCONF"):
        r.set("k", "w")
    with pytest.raises(redis.ResponseError, match="MISCONF"):
        r.ping()
    assert r.get("k") == b"v"  # reads go on
    # stop-writes-on-bgsave-error no: writes go on despite the failure.
    r.config_set("stop-writes-on-bgsave-error", "no")
    assert r.set("k", "w") is True
    r.config_set("stop-writes-on-bgsave-error", "yes")
    with pytest.raises(redis.ResponseError, match="MISCONF"):
        r.set("k", "x")
    target.mkdir()
    assert r.bgsave()
    assert wait_for(lambda: r.info("persistence")["rdb_last_bgsave_status"] == "ok", timeout=10)
    assert r.set("k", "x") is True
    assert "Failed opening the temp RDB file" in s.output()


def test_bgsave_while_one_runs_is_refused_and_scheduled_behind_a_rewrite(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--shards", 2, "--appendonly", "yes")
    r = s.client()
    pipe = r.pipeline(transaction=False)
    for i in range(300_000):
        pipe.set(f"k{i}", "x" * 50)
        if i % 10000 == 9999:
            pipe.execute()
    pipe.execute()
    r.execute_command("BGSAVE")
    refused = 0
    while r.info("persistence")["rdb_bgsave_in_progress"] == 1:
        try:
            r.execute_command("BGSAVE", "SCHEDULE")  # (redis-py's bgsave() adds SCHEDULE)
            break  # the first one ended in between, and this one started
        except redis.ResponseError as e:
            assert "Background save already in progress" in str(e)
            refused += 1
        try:
            r.save()
            break  # the background save ended in between; SAVE then ran
        except redis.ResponseError as e:
            assert "Background save already in progress" in str(e)
    assert refused >= 1
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("BGSAVE", "NOW")
    assert wait_for(lambda: r.info("persistence")["rdb_bgsave_in_progress"] == 0, timeout=60)
    saves = r.info("persistence")["rdb_saves"]
    # Behind a rewrite, BGSAVE is refused and BGSAVE SCHEDULE starts once it ends.
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        raw.sendall(b"BGREWRITEAOF\r\nBGSAVE\r\nBGSAVE SCHEDULE\r\n")
        got = b""
        while got.count(b"\r\n") < 3:
            got += raw.recv(1000)
    lines = got.split(b"\r\n")
    assert lines[0] == b"+Background append only file rewriting started"
    assert lines[1].startswith(b"-ERR Another child process is active (AOF?)") or lines[1] == b"+Background saving started"
    assert lines[2] in (b"+Background saving scheduled", b"+Background saving started", b"-ERR Background save already in progress")
    assert wait_for(lambda: r.info("persistence")["rdb_saves"] > saves, timeout=60)
    assert wait_for(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0, timeout=60)
    check_rdb(tmp_path / "dump.rdb")


def test_sigterm_saves_when_save_points_are_set_and_shutdown_nosave_does_not(make_server, tmp_path):
    d1 = tmp_path / "one"
    d1.mkdir()
    s = make_server("--dir", d1, "--save", "3600 1000", "--loglevel", "notice")
    s.client().set("k", "v")
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(20) == 0
    check_rdb(d1 / "dump.rdb")
    assert "Saving the final RDB snapshot before exiting." in s.output()

    d2 = tmp_path / "two"
    d2.mkdir()
    s = make_server("--dir", d2, "--save", "3600 1000")
    c = s.client()
    c.set("k", "v")
    c.shutdown(nosave=True)  # (redis-py takes the closed connection as success)
    assert s.proc.wait(20) == 0
    assert not (d2 / "dump.rdb").exists()

    d3 = tmp_path / "three"
    d3.mkdir()
    s = make_server("--dir", d3)  # no save points: SIGTERM does not save, SHUTDOWN SAVE does
    c = s.client()
    c.set("k", "v")
    c.shutdown(save=True)
    assert s.proc.wait(20) == 0
    proc, port = start_redis(d3)
    try:
        assert redis.Redis(port=port).get("k") == b"v"
    finally:
        stop(proc)


LIBRARY = "#!lua name=kept\nredis.register_function('kept', function(keys, args) return 'still here' end)"


def test_restart_loads_everything_back_even_with_another_shard_count(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--shards", 2)
    r = s.client()
    fill(r)
    r.function_load(LIBRARY)
    original = dump(s.port)
    r.shutdown(save=True)
    assert s.proc.wait(20) == 0
    again = make_server("--dir", tmp_path, "--shards", 3, "--loglevel", "notice")
    assert dump(again.port) == original
    c = again.client()
    assert c.fcall("kept", 0) == b"still here"
    assert c.info("persistence")["rdb_last_load_keys_loaded"] == len(original)
    assert f"keys loaded: {len(original)}" in again.output()


@pytest.mark.parametrize("reference", ["redis-server", "valkey-server"])
def test_berth_loads_what_redis_and_valkey_save(make_server, tmp_path, reference):
    """redis-server 7.0 writes RDB 10 and valkey-server 8.1 RDB 11, each with its compact
    encodings (listpacks, intsets, quicklists, stream nodes with deleted entries): Berth
    loads both into the same keyspace they hold."""
    from conftest import valkey_binary
    binary = "redis-server" if reference == "redis-server" else valkey_binary()
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--dir", str(tmp_path),
                             "--list-max-listpack-size", "4", "--list-compress-depth", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        ref = redis.Redis(port=port)
        assert wait_for(lambda: _pings(ref))
        fill(ref)
        ref.function_load(LIBRARY)
        original = dump(port)
        assert ref.save()
    finally:
        stop(proc)
    s = make_server("--dir", tmp_path, "--shards", 2)
    assert dump(s.port) == original
    assert s.client().fcall("kept", 0) == b"still here"


def _pings(r):
    try:
        return r.ping()
    except redis.ConnectionError:
        return False


def test_a_damaged_file_stops_the_start_with_file_and_offset(make_server, tmp_path):
    s = make_server("--dir", tmp_path)
    fill(s.client())
    s.client().save()
    s.stop()
    good = (tmp_path / "dump.rdb").read_bytes()
    # A flipped byte in the middle: the checksum catches what the structure does not.
    bad = bytearray(good)
    bad[len(good) // 2] ^= 0x5A
    (tmp_path / "dump.rdb").write_bytes(bytes(bad))
    from conftest import BINARY

    def start_fails():
        out = subprocess.run([BINARY, "--port", str(free_port()), "--dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=20)
        return out.returncode, out.stdout + out.stderr
    code, log = start_fails()
    assert code == 1 and "Fatal error loading the DB from" in log and "dump.rdb" in log and "offset" in log, log
    # Truncated anywhere: refused, never a crash or half a dataset.
    for cut in (5, 9, 40, len(good) // 3, len(good) - 9, len(good) - 1):
        (tmp_path / "dump.rdb").write_bytes(good[:cut])
        code, log = start_fails()
        assert code == 1 and "Fatal error loading the DB" in log, (cut, log)


def test_dump_and_restore_move_every_type_between_berth_and_redis_server(make_server, redis_server, tmp_path):
    """DUMP payloads go both ways: redis-server 7.0's (with its compact encodings) into
    Berth and Berth's into redis-server, every type, with identical contents."""
    s = make_server("--shards", 2)
    berth = s.client()
    ref = redis.Redis(port=redis_server.connection_pool.connection_kwargs["port"])
    fill(ref, big=True)
    original = dump(ref.connection_pool.connection_kwargs["port"])
    for db in (0, 3):
        ref.execute_command("SELECT", db)
        berth.execute_command("SELECT", db)
        for k in ref.scan_iter(count=1000):
            payload = ref.dump(k)
            pttl = ref.pttl(k)
            assert berth.restore(k, max(pttl, 0), payload) == b"OK"
    berth.execute_command("SELECT", 0)
    ref.execute_command("SELECT", 0)
    assert dump(s.port) == _without_ttl_drift(original, dump(s.port))
    # And back: Berth's payloads into an empty redis-server.
    ref.flushall()
    for db in (0, 3):
        ref.execute_command("SELECT", db)
        berth.execute_command("SELECT", db)
        for k in berth.scan_iter(count=1000):
            assert ref.restore(k, 0, berth.dump(k)) == b"OK"
            deadline = berth.pexpiretime(k)
            if deadline > 0:
                ref.pexpireat(k, deadline)
    assert dump(ref.connection_pool.connection_kwargs["port"]) == dump(s.port)


def _without_ttl_drift(original, restored):
    """RESTORE with the remaining PTTL lands a few milliseconds after the original
    deadline: take Berth's deadlines where they are within a second of the original's."""
    out = {}
    for k, (kind, value, deadline) in original.items():
        got = restored.get(k)
        if got and deadline > 0 and abs(got[2] - deadline) < 1000:
            deadline = got[2]
        out[k] = (kind, value, deadline)
    return out


def test_restore_answers_as_redis_does(make_server, redis_server):
    s = make_server()
    berth = s.client()
    ref = redis_server
    ref.set("k", "v")
    payload = redis.Redis(port=ref.connection_pool.connection_kwargs["port"]).dump("k")
    for c in (berth, redis.Redis(port=ref.connection_pool.connection_kwargs["port"])):
        c.delete("x")
        assert c.restore("x", 0, payload) == b"OK"
        assert c.get("x") == b"v"
        with pytest.raises(redis.ResponseError, match="^BUSYKEY Target key name already exists.$"):
            c.restore("x", 0, payload)
        assert c.restore("x", 0, payload, replace=True) == b"OK"
        damaged = payload[:-1] + bytes([payload[-1] ^ 1])
        with pytest.raises(redis.ResponseError, match="^DUMP payload version or checksum are wrong$"):
            c.restore("y", 0, damaged)
        with pytest.raises(redis.ResponseError, match="^Invalid TTL value, must be >= 0$"):
            c.restore("y", -5, payload)
        with pytest.raises(redis.ResponseError, match="^Invalid IDLETIME value, must be >= 0$"):
            c.execute_command("RESTORE", "y", 0, payload, "IDLETIME", -1)
        with pytest.raises(redis.ResponseError, match="^Invalid FREQ value, must be >= 0 and <= 255$"):
            c.execute_command("RESTORE", "y", 0, payload, "FREQ", 256)
        with pytest.raises(redis.ResponseError, match="^syntax error$"):
            c.execute_command("RESTORE", "y", 0, payload, "IDLETIME", 1, "FREQ", 1)
        # A TTL already in the past replaces (deletes) and creates nothing.
        assert c.execute_command("RESTORE", "x", 1, payload, "ABSTTL", "REPLACE") == b"OK"
        assert c.exists("x") == 0
        assert c.restore("t", 5000, payload) == b"OK"
        assert 4000 < c.pttl("t") <= 5000
        assert c.dump("missing") is None
    # Redis's own payload of a truncated body: Bad data format.
    body = payload[:-10]
    import struct
    truncated_body = body[:-1]
    footer = struct.pack("<H", 10)
    crc = _crc64(truncated_body + footer)
    with pytest.raises(redis.ResponseError, match="^Bad data format$"):
        berth.restore("z", 0, truncated_body + footer + struct.pack("<Q", crc))


def _crc64(data):
    poly = 0x95AC9329AC4BC9B5
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc


def test_debug_reload_round_trips_every_type(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--shards", 3)
    r = s.client()
    fill(r)
    r.function_load(LIBRARY)
    original = dump(s.port)
    assert r.execute_command("DEBUG", "RELOAD") == b"OK"
    assert dump(s.port) == original
    assert r.fcall("kept", 0) == b"still here"
    # NOSAVE loads the file as it is: a key written since is gone again.
    r.set("since", "1")
    assert r.execute_command("DEBUG", "RELOAD", "NOSAVE") == b"OK"
    assert r.exists("since") == 0 and dump(s.port) == original


def test_flushall_with_save_points_saves_the_empty_data_set_and_stops_a_running_bgsave(make_server, tmp_path):
    s = make_server("--dir", tmp_path, "--save", "3600 1000000", "--shards", 2)
    r = s.client()
    pipe = r.pipeline(transaction=False)
    for i in range(200_000):
        pipe.set(f"k{i}", i)
        if i % 10000 == 9999:
            pipe.execute()
    pipe.execute()
    r.execute_command("BGSAVE")
    r.flushall()
    assert r.info("persistence")["rdb_bgsave_in_progress"] == 0
    assert r.info("persistence")["rdb_last_bgsave_status"] == "ok"
    proc, port = start_redis(tmp_path)
    try:
        assert redis.Redis(port=port).dbsize() == 0
    finally:
        stop(proc)


JS_LIBRARY = """#!js api_version=1.0 name=jskept

redis.registerFunction('hello', function(client){
    return 'js ' + redis.config.greeting;
});"""


def test_javascript_libraries_survive_a_restart_through_the_rdb_file(make_server, tmp_path):
    """The RDB format has no place for them: they travel in auxiliary fields that
    redis-server skips (it loads the same file)."""
    s = make_server("--dir", tmp_path)
    r = s.client()
    r.execute_command("TFUNCTION", "LOAD", "CONFIG", '{"greeting": "hi"}', JS_LIBRARY)
    r.set("k", "v")
    assert r.execute_command("TFCALL", "jskept.hello", 0) == b"js hi"
    r.shutdown(save=True)
    again = make_server("--dir", tmp_path)
    c = again.client()
    assert c.execute_command("TFCALL", "jskept.hello", 0) == b"js hi"
    assert c.execute_command("DEBUG", "RELOAD") == b"OK"
    assert c.execute_command("TFCALL", "jskept.hello", 0) == b"js hi"
    check_rdb(tmp_path / "dump.rdb")
    again.stop()
    proc, port = start_redis(tmp_path)
    try:
        assert redis.Redis(port=port).get("k") == b"v"
    finally:
        stop(proc)


def test_function_dump_payloads_move_between_berth_and_redis_server(make_server, redis_server):
    s = make_server()
    berth = s.client()
    ref = redis.Redis(port=redis_server.connection_pool.connection_kwargs["port"])
    ref.function_load(LIBRARY)
    assert berth.function_restore(ref.function_dump()) is True
    assert berth.fcall("kept", 0) == b"still here"
    ref.function_flush()
    assert ref.function_restore(berth.function_dump()) is True
    assert ref.fcall("kept", 0) == b"still here"
    with pytest.raises(redis.ResponseError, match="DUMP payload version or checksum are wrong"):
        berth.function_restore(b"garbage-garbage")


def test_module_data_types_go_through_their_rdb_save_and_rdb_load(make_server, tmp_path):
    """typedemo's counters are written by the type's rdb_save (a signed integer, a string,
    a double and a float, each with Redis's framing) and read back by its rdb_load: in
    Berth after a restart, and in redis-server 7.0 with the same module, both ways."""
    from conftest import ROOT
    subprocess.run(["make", "-C", os.path.join(ROOT, "modules"), "-s"], check=True)
    module = os.path.join(ROOT, "modules", "build", "typedemo.so")
    s = make_server("--dir", tmp_path, "--loadmodule", module, "--shards", 2)
    r = s.client()
    for i in range(20):
        r.execute_command("typedemo.incr", f"counter:{i}", i * 1000 - 7)
    r.set("plain", "v")
    assert r.execute_command("DEBUG", "RELOAD") == b"OK"
    assert [r.execute_command("typedemo.get", f"counter:{i}") for i in range(20)] == [i * 1000 - 7 for i in range(20)]
    # Module-global data (aux_save after the keys) comes back too.
    assert r.execute_command("typedemo.total") == 20
    r.shutdown(save=True)
    check_rdb_with_module = subprocess.run(["redis-check-rdb", str(tmp_path / "dump.rdb")], capture_output=True, text=True)
    # redis-check-rdb has no module loaded: it can only report the module value as unknown.
    assert "typedemo" in check_rdb_with_module.stdout or "module" in check_rdb_with_module.stdout.lower()
    proc, port = start_redis(tmp_path, "--loadmodule", module)
    try:
        ref = redis.Redis(port=port)
        assert [ref.execute_command("typedemo.get", f"counter:{i}") for i in range(20)] == [i * 1000 - 7 for i in range(20)]
        assert ref.execute_command("typedemo.total") == 20
        ref.execute_command("typedemo.incr", "counter:0", 1000)
        assert ref.save()
    finally:
        stop(proc)
    again = make_server("--dir", tmp_path, "--loadmodule", module)
    assert again.client().execute_command("typedemo.get", "counter:0") == 993
    assert again.client().execute_command("typedemo.total") == 21
    # Without the module, the file names the type it cannot load.
    again.stop()
    from conftest import BINARY
    out = subprocess.run([BINARY, "--port", str(free_port()), "--dir", str(tmp_path)], capture_output=True, text=True, timeout=20)
    assert out.returncode == 1 and "tdcounter" in out.stdout + out.stderr, out.stdout


def test_clients_get_loading_while_a_large_file_loads(tmp_path):
    """The shards serve while the data set loads: commands answer -LOADING (redis-py's
    BusyLoadingError), INFO says loading:1, and once it is loaded everything is there."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--dir", str(tmp_path),
                             "--enable-debug-command", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        ref = redis.Redis(port=port)
        assert wait_for(lambda: _pings(ref))
        ref.execute_command("DEBUG", "POPULATE", 1_500_000)
        assert ref.save()
    finally:
        stop(proc)
    from conftest import BINARY
    port = free_port()
    log = tmp_path / "berth.log"
    with open(log, "w") as out:
        berth = subprocess.Popen([BINARY, "--port", str(port), "--dir", str(tmp_path), "--shards", "2"],
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        # A raw connection: redis-py retries -LOADING (a ConnectionError to it) on its own.
        saw_loading = False
        deadline = time.time() + 120
        while time.time() < deadline and not saw_loading:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                    raw.sendall(b"DBSIZE\r\nINFO persistence\r\n")
                    got = b""
                    while b"loading:" not in got:
                        got += raw.recv(65536)
                    if got.startswith(b"-LOADING Berth is loading the dataset in memory\r\n"):
                        assert b"loading:1" in got
                        saw_loading = True
                    else:
                        break  # loaded before this connection got in
            except OSError:
                time.sleep(0.01)
        c = redis.Redis(port=port)
        assert wait_for(lambda: c.info("persistence")["loading"] == 0, timeout=120)
        assert saw_loading, log.read_text()
        assert c.dbsize() == 1_500_000 and c.get("key:12345") == b"value:12345"
        assert c.info("persistence")["loading"] == 0
    finally:
        berth.terminate()
        assert berth.wait(30) == 0


def test_dump_and_restore_of_a_module_value_go_through_its_type(make_server, tmp_path):
    from conftest import ROOT
    subprocess.run(["make", "-C", os.path.join(ROOT, "modules"), "-s"], check=True)
    module = os.path.join(ROOT, "modules", "build", "typedemo.so")
    s = make_server("--loadmodule", module)
    r = s.client()
    r.execute_command("typedemo.incr", "c", 41)
    payload = r.dump("c")
    assert r.restore("copy", 0, payload) == b"OK"
    assert r.execute_command("typedemo.get", "copy") == 41
    proc, port = start_redis(tmp_path, "--loadmodule", module)
    try:
        ref = redis.Redis(port=port)
        assert ref.restore("c", 0, payload) == b"OK"
        assert ref.execute_command("typedemo.incr", "c") == 42
        assert r.restore("back", 0, ref.dump("c")) == b"OK"
        assert r.execute_command("typedemo.get", "back") == 42
    finally:
        stop(proc)
    plain = make_server()
    with pytest.raises(redis.ResponseError, match="Bad data format"):
        plain.client().restore("c", 0, payload)


def test_idle_time_and_access_counter_survive_a_restart_both_ways(make_server, tmp_path):
    """Under an LRU policy RDB files carry each key's idle seconds, under an LFU one its
    counter (Redis's IDLE and FREQ opcodes): Berth writes and reads them, redis-server 7.0
    reads Berth's and Berth reads redis-server's."""
    lru = ("--maxmemory-policy", "allkeys-lru")
    s = make_server("--dir", tmp_path, *lru)
    r = s.client()
    r.set("old", "v")
    time.sleep(2.2)
    r.set("new", "v")
    r.save()
    check_rdb(tmp_path / "dump.rdb")
    s.stop()
    again = make_server("--dir", tmp_path, *lru).client()
    assert again.object("idletime", "old") >= 2 and again.object("idletime", "new") <= 1
    proc, port = start_redis(tmp_path, *lru)
    try:
        ref = redis.Redis(port=port)
        assert ref.object("idletime", "old") >= 2 and ref.object("idletime", "new") <= 1
        ref.config_set("maxmemory-policy", "allkeys-lfu")
        ref.config_set("lfu-log-factor", "0")  # every access counts
        for _ in range(40):
            ref.get("hot")
            ref.set("hot", "v")
        hot, old = ref.object("freq", "hot"), ref.object("freq", "old")
        assert hot > 30
        ref.save()
    finally:
        stop(proc)
    lfu = make_server("--dir", tmp_path, "--maxmemory-policy", "allkeys-lfu").client()
    assert lfu.object("freq", "hot") == hot and lfu.object("freq", "old") == old
    lfu.save()
    check_rdb(tmp_path / "dump.rdb")
    proc, port = start_redis(tmp_path, "--maxmemory-policy", "allkeys-lfu")
    try:
        assert redis.Redis(port=port).object("freq", "hot") == hot
    finally:
        stop(proc)

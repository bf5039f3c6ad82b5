"""SLOWLOG over real sockets: what is recorded (arguments trimmed as Redis trims them, the
client's address and name), in which order, under which thresholds, and from every shard."""
import threading

import pytest
import redis

from conftest import wait_for
from parity import Wire


def entries(c, count=None):
    return c.execute_command("SLOWLOG", "GET", *([count] if count is not None else []))


def test_every_command_is_logged_at_threshold_zero_newest_first(make_server):
    s = make_server("--shards", 2)
    c = s.client(decode_responses=True)
    c.config_set("slowlog-log-slower-than", 0)
    c.client_setname("worker-1")
    c.execute_command("SLOWLOG", "RESET")
    # Keys that hash to different shards: both shards' threads record into one log.
    for key in ("a", "b", "c", "d"):
        c.set(key, "v")
    log = entries(c, -1)
    assert [e[3] for e in log[:4]] == [["SET", k, "v"] for k in ("d", "c", "b", "a")]
    ids = [e[0] for e in log]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    own = c.client_info()
    for e in log[:4]:
        assert len(e) == 6
        assert e[1] > 1_600_000_000 and e[2] >= 0
        assert e[4] == own["addr"] and e[5] == "worker-1"
    c.config_set("slowlog-log-slower-than", -1)  # from here on, reading the log adds nothing to it
    length = c.execute_command("SLOWLOG", "LEN")
    assert length >= 6 and len(entries(c)) == min(10, length) and len(entries(c, 2)) == 2
    c.close()


def test_reset_keeps_ids_rising_and_max_len_keeps_the_newest(make_server):
    c = make_server("--shards", 1).client(decode_responses=True)
    c.config_set("slowlog-log-slower-than", 0)
    c.execute_command("SLOWLOG", "RESET")
    c.set("x", "1")
    last_id = entries(c, 1)[0][0]
    assert c.execute_command("SLOWLOG", "RESET") == "OK"
    assert c.execute_command("SLOWLOG", "LEN") in (0, 1)  # RESET itself may be logged after it ran
    c.set("y", "2")
    assert entries(c, 1)[0][0] > last_id
    c.config_set("slowlog-max-len", 3)
    for i in range(10):
        c.set("k%d" % i, i)
    log = entries(c, -1)
    assert len(log) == 3
    assert [e[3] for e in log] == [["SET", "k%d" % i, str(i)] for i in (9, 8, 7)]
    assert c.execute_command("SLOWLOG", "LEN") == 3
    c.close()


def test_thresholds_decide_what_is_logged(make_server):
    c = make_server("--shards", 2).client(decode_responses=True)
    assert c.config_get("slowlog-*") == {"slowlog-log-slower-than": "10000", "slowlog-max-len": "128"}
    c.execute_command("SLOWLOG", "RESET")
    c.set("fast", "1")
    c.execute_command("DEBUG", "SLEEP", "0.05")
    log = entries(c, -1)
    assert [e[3] for e in log] == [["DEBUG", "SLEEP", "0.05"]]
    assert log[0][2] >= 50000
    c.config_set("slowlog-log-slower-than", -1)
    c.execute_command("SLOWLOG", "RESET")
    c.execute_command("DEBUG", "SLEEP", "0.02")
    assert entries(c, -1) == []
    c.config_set("slowlog-log-slower-than", 0)
    c.config_set("slowlog-max-len", 0)
    before = c.execute_command("SLOWLOG", "LEN")
    c.set("not-logged", 1)
    assert c.execute_command("SLOWLOG", "LEN") == before
    c.close()


def test_passwords_are_not_logged(make_server):
    c = make_server("--shards", 1, "--requirepass", "secret").client(password="secret", decode_responses=True)
    c.config_set("slowlog-log-slower-than", 0)
    c.execute_command("AUTH", "secret")
    c.execute_command("HELLO", "2", "AUTH", "default", "secret")
    c.ping()
    logged = [e[3] for e in entries(c, -1)]
    assert not any("secret" in a for args in logged for a in args), logged
    assert ["PING"] in logged
    c.close()


def test_long_commands_are_trimmed_as_redis_trims_them(make_server, redis_server):
    """The recorded arguments of a 40-argument command with a 300-byte value equal
    redis-server's, byte for byte; so do the errors of SLOWLOG itself."""
    ours = Wire(make_server("--shards", 2).port)
    theirs = Wire(redis_server.connection_pool.connection_kwargs["port"])
    command = ["RPUSH", "long", "x" * 300] + ["v%d" % i for i in range(37)]
    for w in (ours, theirs):
        assert w.call("CONFIG", "SET", "slowlog-log-slower-than", "0") == b"OK"
        w.call("SLOWLOG", "RESET")
        w.call(*command)
    mine, reference = ours.call("SLOWLOG", "GET", "1"), theirs.call("SLOWLOG", "GET", "1")
    assert mine[0][3] == reference[0][3]
    assert mine[0][3][-1] == b"... (9 more arguments)" and mine[0][3][2].endswith(b"... (172 more bytes)")
    for args in (("SLOWLOG", "FOO"), ("SLOWLOG", "LEN", "x"), ("SLOWLOG", "GET", "-2"), ("SLOWLOG", "GET", "x"),
                 ("SLOWLOG",), ("SLOWLOG", "RESET", "now"), ("SLOWLOG", "GET", "1", "2")):
        assert ours.call(*args) == theirs.call(*args), args
    help_ours, help_theirs = ours.call("SLOWLOG", "HELP"), theirs.call("SLOWLOG", "HELP")
    assert help_ours == help_theirs
    ours.close()
    theirs.close()


def test_blocking_command_is_logged_once_unblocked(make_server):
    s = make_server("--shards", "2")
    r = s.client(decode_responses=True)
    r.config_set("slowlog-log-slower-than", 0)
    r.slowlog_reset()
    waiter = s.client(decode_responses=True)
    t = threading.Thread(target=lambda: waiter.blpop("mylist", 0))
    t.start()
    assert wait_for(lambda: r.info("clients")["blocked_clients"] == 1)
    assert not [e for e in entries(r, 50) if e[3][0].upper() == "BLPOP"]
    r.lpush("mylist", 1)
    t.join(5)
    assert wait_for(lambda: len([e for e in entries(r, 50) if e[3][0].upper() == "BLPOP"]) == 1)


@pytest.mark.parametrize("kind", ["eval", "fcall"])
def test_commands_a_script_runs_are_logged_under_its_client(make_server, kind):
    s = make_server("--shards", "2")
    r = s.client(decode_responses=True)
    r.function_load("#!lua name=mylib\nredis.register_function('myfunc', function() server.call('ping') end)")
    r.client_setname("test-client")
    r.config_set("slowlog-log-slower-than", 0)
    r.slowlog_reset()
    if kind == "eval":
        r.eval("server.call('ping')", 0)
    else:
        r.fcall("myfunc", 0)
    script, ping = entries(r, 2)
    assert script[3] == (["EVAL", "server.call('ping')", "0"] if kind == "eval" else ["FCALL", "myfunc", "0"])
    assert ping[3] == ["ping"]
    assert script[4] == ping[4] and script[5] == ping[5] == "test-client"


def calls(c):
    """commandstats as {command: (calls, failed_calls)}, INFO's own entries left out."""
    stats = c.info("commandstats")
    return {k[len("cmdstat_"):]: (v["calls"], v["failed_calls"]) for k, v in stats.items()
            if not k.startswith("cmdstat_info")}


def run_recorded_workload(c):
    """Commands issued every way a client can: alone, queued in MULTI, by a script's
    redis.call (one failing), by a function; returns the slowlog's command names."""
    c.function_load("#!lua name=reclib\nredis.register_function('incrf', function(k) return redis.call('incr', k[1]) end)",
                    replace=True)
    c.config_set("slowlog-log-slower-than", 0)
    c.slowlog_reset()
    c.config_resetstat()
    c.set("k", "v")
    p = c.pipeline(transaction=True)
    p.set("{t}a", 1).incr("{t}b").get("{t}a")
    p.execute()
    c.eval("redis.call('set', KEYS[1], 'x'); redis.pcall('incr', KEYS[1]); return redis.call('get', KEYS[1])", 1, "e")
    c.fcall("incrf", 1, "n")
    c.config_set("slowlog-log-slower-than", -1)
    return [e[3][0].lower() for e in reversed(entries(c, 50))]


def test_every_command_counts_and_is_logged_whoever_ran_it(make_server, redis_server):
    """commandstats counts a command once however it ran (a client, EXEC, a script's
    redis.call, a function), failures included, as redis-server counts them; SLOWLOG has
    EXEC's commands instead of EXEC."""
    s = make_server("--shards", "4")
    c = s.client(decode_responses=True)
    berth_log = run_recorded_workload(c)
    berth_calls = calls(c)
    reference_log = run_recorded_workload(redis_server)
    reference_calls = calls(redis_server)
    assert berth_calls == reference_calls
    assert berth_calls["incr"] == (2, 1) and berth_calls["set"] == (3, 0) and berth_calls["incrby"] == (1, 0)
    # Containers count per subcommand, as Redis 7 does.
    assert berth_calls["config|set"] == (1, 0) and berth_calls["config|resetstat"] == (1, 0)
    assert "exec" not in berth_log
    # The script's and function's commands are logged too (Valkey names its caller;
    # redis-server 7.0 a fake client), right after the script that ran them.
    assert berth_log == [n for n in reference_log], (berth_log, reference_log)
    usec = c.info("commandstats")
    assert usec["cmdstat_incr"]["usec"] > 0, "queued and nested commands are timed"

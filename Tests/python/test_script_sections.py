"""A script's atomic section on four shards: it covers the shards of its declared keys,
so other shards keep serving while it runs, and it widens (by trying, restarting or
escalating) when the script touches keys it did not declare, without losing atomicity."""
import re
import threading
import time

import pytest
import redis

from conftest import wait_for
from test_blocking import keys_on
from test_scripting import home_shard, raw


@pytest.fixture
def srv(make_server):
    return make_server("--shards", 4)


def info_stat(r, field):
    return int(r.info("stats")[field])


def test_other_shards_keep_serving_while_a_script_runs(srv):
    r = srv.client(decode_responses=True)
    r.config_set("busy-reply-threshold", 3_600_000)
    runner = srv.client(decode_responses=True, socket_timeout=60)
    script_key = keys_on(home_shard(runner), 1, "s")[0]
    other = None
    for _ in range(16):
        c = srv.client(decode_responses=True, socket_timeout=20)
        if home_shard(c) != home_shard(runner):
            other = c
            break
    assert other is not None
    free_shards = [s for s in range(4) if s != home_shard(runner)]
    k1, k2 = keys_on(free_shards[0], 1, "o")[0], keys_on(free_shards[1], 1, "p")[0]
    out = {}

    def run():
        try:
            out["reply"] = runner.eval("redis.call('get', KEYS[1]) while true do end", 1, script_key)
        except redis.ResponseError as e:
            out["reply"] = e
    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)  # let the script start; it never ends on its own
    # It holds only its key's shard: commands on the other shards run meanwhile (with
    # every shard locked, as before sections, these would wait for the script forever).
    assert other.set(k1, "a") is True
    assert other.mset({k1: "b", k2: "c"}) is True
    assert other.mget(k1, k2) == ["b", "c"]
    assert t.is_alive()
    # Still running: once past busy-reply-threshold everyone hears -BUSY, as in Redis,
    # and SCRIPT KILL ends it.
    r.config_set("busy-reply-threshold", 10)
    assert wait_for(lambda: "BUSY" in str(raw(other, "PING")[1]))
    assert other.script_kill() is True
    t.join(30)
    assert str(out["reply"]).startswith("Script killed by user with SCRIPT KILL")
    assert other.set(script_key, "free") is True


# Each moves one unit between two keys on different shards, so the sum over all keys
# never changes. The second key is never declared: reaching it widens the section.
WRITE_THEN_UNDECLARED = "redis.call('decrby', KEYS[1], 1) redis.call('incrby', ARGV[1], 1) return 1"
# Logs first: a run abandoned before its first write must not leave its line behind.
UNDECLARED_THEN_WRITE = ("redis.log(redis.LOG_WARNING, 'token ' .. ARGV[2]) "
                         "local v = redis.call('get', ARGV[1]) redis.call('incrby', ARGV[1], -1) "
                         "redis.call('incrby', KEYS[1], 1) return v")
NO_KEYS = "redis.call('incrby', ARGV[1], 1) redis.call('incrby', ARGV[2], -1) return 2"


def test_undeclared_keys_widen_the_section_atomically(srv):
    r = srv.client(decode_responses=True)
    keys = [keys_on(s, 2, f"u{s}_") for s in range(4)]
    keys = [k for pair in keys for k in pair]
    r.mset({k: 0 for k in keys})
    tokens = []

    def load(round_no):
        stop = threading.Event()
        sums, errors = [], []

        def reader():
            c = srv.client()
            while not stop.is_set():
                sums.append(sum(int(v) for v in c.mget(keys)))

        def transfers():
            # Ordinary multi-shard lock sets that must step aside for an escalating script,
            # and now and then a transaction with a script in it (it takes the script lock).
            c = srv.client()
            i = 0
            while not stop.is_set():
                a, b = keys[i % 8], keys[(i + 3) % 8]
                p = c.pipeline(transaction=True)
                if i % 4 == 0:
                    p.eval(NO_KEYS, 0, a, b)
                p.incrby(a, 5)
                p.incrby(b, -5)
                p.execute()
                i += 1

        def scripts(seed):
            c = srv.client()
            try:
                for i in range(400):
                    a, b = keys[(seed + i) % 8], keys[(seed + 3 * i + 1) % 8]
                    if a == b:
                        continue
                    kind = (seed + i) % 3
                    if kind == 0:
                        c.eval(WRITE_THEN_UNDECLARED, 1, a, b)
                    elif kind == 1:
                        token = f"{round_no}-{seed}-{i}"
                        c.eval(UNDECLARED_THEN_WRITE, 1, a, b, token)
                        tokens.append(token)
                    else:
                        c.eval(NO_KEYS, 0, a, b)
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(e)
        background = [threading.Thread(target=reader) for _ in range(2)] + [threading.Thread(target=transfers) for _ in range(2)]
        workers = [threading.Thread(target=scripts, args=(s,)) for s in range(4)]
        for t in background + workers:
            t.start()
        for t in workers:
            t.join(300)
        stop.set()
        for t in background:
            t.join(60)
        assert errors == []
        assert not any(t.is_alive() for t in background + workers)
        assert sums and set(sums) == {0}
        assert sum(int(v) for v in r.mget(keys)) == 0

    # Both ways of widening must happen under this load; whether a given round hits the
    # collision each needs is up to the scheduler, so rounds repeat (with every check)
    # until both have, a handful at most.
    for round_no in range(5):
        load(round_no)
        if info_stat(r, "script_section_restarts") > 0 and info_stat(r, "script_section_escalations") > 0:
            break
    assert info_stat(r, "script_section_restarts") > 0
    assert info_stat(r, "script_section_escalations") > 0
    # Each run's redis.log line reached the log exactly once, restarts included.
    logged = re.findall(r"<script> token (\S+)", srv.output())
    assert sorted(logged) == sorted(tokens)

#!/usr/bin/env python3
"""Measurements for Benchmarks/persistence.sh (run by it, not on its own).

  fill PORT KEYS HASHES FIELDS      streams KEYS strings and HASHES hashes of FIELDS fields
  bgsave PORT PID KEYS HASHES BEFORE_S
                                    write load on one connection, timing every command;
                                    BEFORE_S seconds of it, then BGSAVE, until the save ends;
                                    samples the server's (and a forked child's) memory;
                                    prints one JSON line
  save PORT                         seconds a foreground SAVE takes (one JSON line)
  wait-loaded PORT EXPECTED LIMIT_S  polls DBSIZE until it equals EXPECTED; prints the
                                    wall clock (time.time_ns) at that moment
  summary FILE                      the comparison tables from the JSON lines in FILE

Keys are named as redis-benchmark's -r names them (key:%012d), so a redis-benchmark
write load started beside `bgsave` rewrites the filled keys instead of adding new ones.
"""
import gc
import json
import os
import random
import select
import socket
import statistics
import sys
import time
from array import array

VALUE = b"value-%d"


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    """A blocking RESP connection for simple request/reply use."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _fill(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return (t == b"-", rest.decode())
        if t == b":":
            return (False, int(rest))
        if t == b"$":
            n = int(rest)
            if n < 0:
                return (False, None)
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return (False, data.decode(errors="replace"))
        if t == b"*":
            return (False, [self.reply()[1] for _ in range(int(rest))])
        raise ValueError("unexpected reply %r" % line)

    def call(self, *args):
        self.s.sendall(command(*args))
        err, value = self.reply()
        if err:
            raise RuntimeError("%s: %s" % (args[0], value))
        return value


def info_fields(text):
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


# --- fill ---------------------------------------------------------------------------

def fill(port, keys, hashes, fields):
    """Pipelines the data set in batches over one connection."""
    c = Conn(port)
    batch = 2000
    sent = 0

    def send(cmds):
        c.s.sendall(b"".join(cmds))
        for _ in cmds:
            err, value = c.reply()
            if err:
                raise RuntimeError(value)

    for start in range(0, keys, batch):
        send([command(b"SET", b"key:%012d" % i, VALUE % i) for i in range(start, min(keys, start + batch))])
        sent += min(batch, keys - start)
    fbatch = max(1, batch // max(1, fields))
    for start in range(0, hashes, fbatch):
        cmds = []
        for h in range(start, min(hashes, start + fbatch)):
            args = [b"HSET", b"hash:%d" % h]
            for f in range(fields):
                args += [b"field-%d" % f, VALUE % (h * fields + f)]
            cmds.append(command(*args))
        send(cmds)
    n = c.call("DBSIZE")
    if n != keys + hashes:
        raise SystemExit("fill: DBSIZE is %d after filling, expected %d" % (n, keys + hashes))


# --- memory sampling ----------------------------------------------------------------

def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def status_kb(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True  # gone


# --- BGSAVE under write load ------------------------------------------------------

def percentiles(lat_ns):
    if not lat_ns:
        return {"count": 0}
    s = sorted(lat_ns)
    n = len(s)

    def pick(q):
        return s[min(n - 1, int(q * n))] / 1e3
    return {"count": n, "p50_us": pick(0.50), "p99_us": pick(0.99), "p999_us": pick(0.999),
            "max_us": s[-1] / 1e3}


def bgsave(port, pid, keys, hashes, before_s):
    load = Conn(port)
    ctl = Conn(port)
    ctl.s.setblocking(False)
    # Commands: SET over the filled strings, HSET of one field over the filled hashes
    # (nine in ten SET), random keys drawn ahead of time.
    rnd = random.Random(7)
    ncmds = 1 << 16
    cmds = []
    for _ in range(ncmds):
        if hashes and rnd.random() < 0.1:
            h = rnd.randrange(hashes)
            cmds.append(command(b"HSET", b"hash:%d" % h, b"field-0", b"changed"))
        else:
            cmds.append(command(b"SET", b"key:%012d" % rnd.randrange(keys), b"changed"))

    stats0 = info_fields(load.call("INFO", "stats"))
    sent_at = array("q")   # ns since t0, per command
    lat = array("q")       # ns
    errors = 0
    t0 = time.perf_counter_ns()
    wall0 = time.time_ns()
    phase = "before"       # -> "during" (BGSAVE sent) -> "done"
    save_sent = save_reply = save_end_flag = child_end = None
    pending = None         # what the control connection waits for: "bgsave" | "info"
    ctlbuf = b""
    last_poll = last_mem = last_pss = 0
    mem = {"rss_before_kb": 0, "pss_before_kb": 0, "parent_rss_peak_kb": 0, "child_rss_peak_kb": 0,
           "sum_rss_peak_kb": 0, "sum_pss_peak_kb": 0, "children": []}
    seen_child = None
    info_during = {}
    stats_at_save = None
    gc.disable()
    i = 0
    s = load.s
    while True:
        now = time.perf_counter_ns()
        # one write, timed
        c = cmds[i & (ncmds - 1)]
        i += 1
        a = time.perf_counter_ns()
        s.sendall(c)
        buf = s.recv(4096)
        while not buf.endswith(b"\r\n"):
            buf += s.recv(4096)
        b = time.perf_counter_ns()
        if buf[:1] == b"-":
            errors += 1
        sent_at.append(a - t0)
        lat.append(b - a)

        if phase == "before" and now - t0 >= before_s * 1e9:
            mem["rss_before_kb"] = status_kb(pid)
            mem["pss_before_kb"] = pss_kb(pid)
            stats_at_save = info_fields(ctl_call_blocking(ctl, "INFO", "stats"))
            ctl.s.sendall(command("BGSAVE"))
            pending, ctlbuf = "bgsave", b""
            save_sent = time.perf_counter_ns()
            phase = "during"
        # the control connection, never waited on: BGSAVE's reply, then INFO polls
        if pending:
            try:
                chunk = ctl.s.recv(1 << 16)
                ctlbuf += chunk
            except BlockingIOError:
                pass
            done, value = parse_complete(ctlbuf)
            if done:
                if pending == "bgsave":
                    save_reply = time.perf_counter_ns()
                    if value.startswith("-"):
                        raise SystemExit("BGSAVE failed: %s" % value)
                else:
                    f = info_fields(value)
                    if f.get("rdb_bgsave_in_progress") == "0" and save_end_flag is None:
                        save_end_flag = time.perf_counter_ns()
                        info_during = f
                pending = None
        if phase == "during" and pending is None and save_end_flag is None and now - last_poll > 5e6:
            ctl.s.sendall(command("INFO", "persistence"))
            pending, ctlbuf, last_poll = "info", b"", now
        if phase == "during" and now - last_mem > 5e6:
            last_mem = now
            kids = children(pid)
            prss = status_kb(pid)
            crss = sum(status_kb(k) for k in kids if not zombie(k))
            for k in kids:
                if k not in mem["children"]:
                    mem["children"].append(k)
                    seen_child = k
            if seen_child is not None and child_end is None and zombie(seen_child):
                child_end = time.perf_counter_ns()
            mem["parent_rss_peak_kb"] = max(mem["parent_rss_peak_kb"], prss)
            mem["child_rss_peak_kb"] = max(mem["child_rss_peak_kb"], crss)
            mem["sum_rss_peak_kb"] = max(mem["sum_rss_peak_kb"], prss + crss)
            if now - last_pss > 100e6:
                last_pss = now
                mem["sum_pss_peak_kb"] = max(mem["sum_pss_peak_kb"],
                                             pss_kb(pid) + sum(pss_kb(k) for k in kids if not zombie(k)))
        if save_end_flag is not None and pending is None:
            break
        if phase == "during" and now - save_sent > 600e9:
            raise SystemExit("BGSAVE still in progress after 600 s")
    end = time.perf_counter_ns()
    gc.enable()
    ctl.s.setblocking(True)
    stats1 = info_fields(load.call("INFO", "stats"))
    persistence = info_fields(load.call("INFO", "persistence"))

    start_ns = save_sent - t0
    before = [lat[k] for k in range(len(lat)) if sent_at[k] < start_ns]
    during = [lat[k] for k in range(len(lat)) if sent_at[k] >= start_ns]
    before_s_real = start_ns / 1e9
    during_s = (end - save_sent) / 1e9

    def server_ops(a, b, secs):
        try:
            return (int(b["total_commands_processed"]) - int(a["total_commands_processed"])) / secs
        except (KeyError, ValueError):
            return None
    return {
        "before": dict(percentiles(before), client_ops_s=len(before) / before_s_real,
                       server_ops_s=server_ops(stats0, stats_at_save, before_s_real)),
        "during": dict(percentiles(during), client_ops_s=len(during) / during_s,
                       server_ops_s=server_ops(stats_at_save, stats1, during_s)),
        "errors": errors,
        "bgsave_reply_ms": (save_reply - save_sent) / 1e6,
        # until INFO first showed rdb_bgsave_in_progress:0 (redis-server notices its child's
        # exit in serverCron, up to 1/hz s late); for a forking server, also until the
        # child had exited (the file was renamed into place before that)
        "save_s_flag": (save_end_flag - save_sent) / 1e9,
        "save_s_child": (child_end - save_sent) / 1e9 if child_end else None,
        "memory": mem,
        "latest_fork_usec": stats1.get("latest_fork_usec"),
        "rdb_last_cow_size": persistence.get("rdb_last_cow_size"),
        "rdb_last_bgsave_status": persistence.get("rdb_last_bgsave_status"),
        "dbsize": load.call("DBSIZE"),
        "wall_start_ns": wall0,
    }


def ctl_call_blocking(ctl, *args):
    ctl.s.setblocking(True)
    try:
        return ctl.call(*args)
    finally:
        ctl.s.setblocking(False)


def parse_complete(buf):
    """(True, text) once buf holds one whole simple or bulk reply."""
    i = buf.find(b"\r\n")
    if i < 0:
        return False, None
    if buf[:1] == b"$":
        n = int(buf[1:i])
        if len(buf) < i + 2 + n + 2:
            return False, None
        return True, buf[i + 2:i + 2 + n].decode(errors="replace")
    return True, buf[:i].decode(errors="replace")


# --- SAVE, load at start -----------------------------------------------------------

def save(port):
    c = Conn(port)
    a = time.perf_counter_ns()
    c.call("SAVE")
    b = time.perf_counter_ns()
    return {"save_s": (b - a) / 1e9}


def wait_loaded(port, expected, limit_s):
    deadline = time.time() + limit_s
    last = None
    c = None
    while time.time() < deadline:
        try:
            if c is None:
                c = Conn(port)
            c.s.sendall(command("DBSIZE"))
            err, value = c.reply()
            if not err and value == expected:
                return time.time_ns()
            last = value
            if not err:
                # answering, but with another count: the load is over and it is wrong
                raise SystemExit("DBSIZE is %s after loading, expected %d" % (value, expected))
        except (ConnectionError, OSError):
            c = None
        time.sleep(0.002)
    raise SystemExit("no DBSIZE %d within %d s (last: %r)" % (expected, limit_s, last))


# --- summary -------------------------------------------------------------------------

def summary(path):
    rows = [json.loads(line) for line in open(path) if line.startswith("{")]
    by = {}
    for r in rows:
        by.setdefault((r["test"], r["server"]), []).append(r)
    servers = ["redis", "berth"]

    def med(test, server, f):
        vals = [f(r) for r in by.get((test, server), [])]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    def ratio(b, r):
        return "%.2fx" % (b / r) if b is not None and r else "-"

    def fmt(v, unit):
        if v is None:
            return "-"
        if unit == "s":
            return "%.3f s" % v
        if unit == "ms":
            return "%.2f ms" % v
        if unit == "us":
            return "%.0f us" % v
        if unit == "MB":
            return "%.1f MB" % v
        if unit == "ops":
            return "%.0f" % v
        return str(v)

    out = []

    def table(title, metrics):
        out.append("")
        out.append(title)
        out.append("")
        out.append("| measure | redis-server | berth | berth/redis |")
        out.append("|---|---|---|---|")
        for name, test, f, unit in metrics:
            r = med(test, "redis", f)
            b = med(test, "berth", f)
            out.append("| %s | %s | %s | %s |" % (name, fmt(r, unit), fmt(b, unit), ratio(b, r)))

    mb = 1 / 1024

    def save_s(r):
        return r["save_s_child"] if r["save_s_child"] is not None else r["save_s_flag"]
    placements = sorted({t for t, _ in by if t.startswith("bgsave-")}, key=lambda t: t != "bgsave-pinned")
    for test in placements:
        n = len(by.get((test, "redis"), []))
        table("BGSAVE under write load, %s (medians of %d rounds per server)" % (test[7:], n), [
            ("save duration (BGSAVE to file in place)", test, save_s, "s"),
            ("save duration (BGSAVE to INFO in_progress:0)", test, lambda r: r["save_s_flag"], "s"),
            ("BGSAVE reply", test, lambda r: r["bgsave_reply_ms"], "ms"),
            ("timed commands during the save", test, lambda r: r["during"]["count"], "ops"),
            ("max latency, before the save", test, lambda r: r["before"].get("max_us"), "us"),
            ("max latency, during the save", test, lambda r: r["during"].get("max_us"), "us"),
            ("p50 latency, before", test, lambda r: r["before"].get("p50_us"), "us"),
            ("p50 latency, during", test, lambda r: r["during"].get("p50_us"), "us"),
            ("p99 latency, before", test, lambda r: r["before"].get("p99_us"), "us"),
            ("p99 latency, during", test, lambda r: r["during"].get("p99_us"), "us"),
            ("p99.9 latency, before", test, lambda r: r["before"].get("p999_us"), "us"),
            ("p99.9 latency, during", test, lambda r: r["during"].get("p999_us"), "us"),
            ("server commands/s, before", test, lambda r: r["before"].get("server_ops_s"), "ops"),
            ("server commands/s, during", test, lambda r: r["during"].get("server_ops_s"), "ops"),
            ("RSS before the save", test, lambda r: r["memory"]["rss_before_kb"] * mb, "MB"),
            ("extra RSS, server + child (peak sum - before)", test,
             lambda r: (r["memory"]["sum_rss_peak_kb"] - r["memory"]["rss_before_kb"]) * mb, "MB"),
            ("extra RSS, server process alone", test,
             lambda r: (r["memory"]["parent_rss_peak_kb"] - r["memory"]["rss_before_kb"]) * mb, "MB"),
            ("extra PSS, server + child (physical)", test,
             lambda r: (r["memory"]["sum_pss_peak_kb"] - r["memory"]["pss_before_kb"]) * mb, "MB"),
        ])
    table("SAVE (foreground) and file", [
        ("SAVE duration", "save", lambda r: r["save_s"], "s"),
        ("RDB file size", "save", lambda r: r.get("file_bytes", 0) / 1048576, "MB"),
    ])
    load_rows = []
    for f in ("redis", "berth"):
        load_rows.append(("load at start, file written by %s" % ("redis-server" if f == "redis" else "berth"),
                          "load-" + f, lambda r: r["load_s"], "s"))
    table("Start with an RDB file until DBSIZE answers the full count", load_rows)
    red = [r for r in rows if r["test"].startswith("bgsave-") and r["server"] == "redis"]
    if red:
        out.append("")
        out.append("redis-server INFO after each BGSAVE: latest_fork_usec %s; rdb_last_cow_size (MB) %s"
                   % (" ".join(str(r["latest_fork_usec"]) for r in red),
                      " ".join("%.1f" % (int(r["rdb_last_cow_size"]) / 1048576) for r in red)))
    print("\n".join(out))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "fill":
        fill(int(args[0]), int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "bgsave":
        print(json.dumps(bgsave(int(args[0]), int(args[1]), int(args[2]), int(args[3]), float(args[4]))))
    elif cmd == "save":
        print(json.dumps(save(int(args[0]))))
    elif cmd == "wait-loaded":
        print(wait_loaded(int(args[0]), int(args[1]), float(args[2])))
    elif cmd == "summary":
        summary(args[0])
    else:
        raise SystemExit("unknown command %s" % cmd)


if __name__ == "__main__":
    main()

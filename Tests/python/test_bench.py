"""berth-bench itself: a short run against the real server writes a complete JSON report
(every scenario, exactly-once hand-off) and `report` turns runs into a table and a chart."""
import json
import os
import subprocess
import xml.dom.minidom

from conftest import ROOT

BENCH = os.environ.get("BERTH_BENCH", os.path.join(ROOT, ".build", "debug", "berth-bench"))


def run_bench(port, label, out):
    subprocess.run([BENCH, "run", "--port", str(port), "--label", label, "--iterations", "20", "--repeats", "2",
                    "--load", "2", "--timeout-clients", "1,50", "--timeout-ms", "20", "--messages", "400",
                    "--subscribers", "4", "--memory-clients", "500", "--json", out], check=True, capture_output=True, timeout=300)
    return json.load(open(out))


def test_bench_run_and_report(make_server, tmp_path):
    server = make_server("--shards", 2)
    report = run_bench(server.port, "berth", str(tmp_path / "berth.json"))
    assert report["shards"] == 2
    names = {(m["name"], m["load"]) for m in report["measurements"]}
    for load in (0, 2):
        for expected in ["wake LPUSH->BLPOP same-shard", "wake LPUSH->BLPOP cross-shard", "wake XADD->XREAD cross-shard",
                         "unblock CLIENT UNBLOCK ERROR", "timeout lateness, 50 blocked", "pubsub PUBLISH->message",
                         "script EVALSHA round trip", "script FCALL round trip"]:
            assert (expected, load) in names
    assert ("memory per idle connection", 0) in names and ("memory per blocked client", 0) in names
    for m in report["measurements"]:
        if m["unit"] == "bytes":
            # 500 connections parked in BLPOP cost the server some resident memory.
            assert m["samples"] == 500 and (m["name"].endswith("idle connection") or m["throughput"] > 0)
        elif m["unit"] == "us":
            assert m["samples"] > 0 and 0 < m["p50"] <= m["p99"] <= m["max"] and len(m["repeats"]) == 2
        else:
            assert m["throughput"] > 0
            if m["name"].startswith("queue hand-off"):
                assert m["note"] == "exactly once"
    # A second run stands in for another server; `report` compares them.
    run_bench(server.port, "again", str(tmp_path / "again.json"))
    svg = tmp_path / "chart.svg"
    out = subprocess.run([BENCH, "report", str(tmp_path / "berth.json"), str(tmp_path / "again.json"),
                          "--baseline", "berth", "--svg", str(svg)], check=True, capture_output=True, text=True)
    assert "| wake LPUSH->BLPOP same-shard | 0 |" in out.stdout and "again/berth" in out.stdout
    assert "| memory per blocked client | 0 |" in out.stdout and "p99.9" in out.stdout
    doc = xml.dom.minidom.parse(str(svg))
    assert len(doc.getElementsByTagName("polyline")) >= 2
    # Latency on a log axis (decade gridlines), with the p50/p99/p99.9 table beside.
    texts = [t.firstChild.data for t in doc.getElementsByTagName("text") if t.firstChild]
    assert any("log scale" in t for t in texts) and texts.count("p50") >= 1 and "again" in texts


def test_scaling_and_compare_scripts_produce_their_tables():
    """The throughput scripts run end to end on a tiny load (figures are not checked:
    only that every server answered every test and each row is complete)."""
    env = dict(os.environ, BERTH=os.environ.get("BERTH_SERVER", os.path.join(ROOT, ".build", "debug", "berth-server")),
               TESTS="set,get", ROUNDS="1")
    out = subprocess.run(["bash", "Benchmarks/scaling.sh", "2000"], cwd=ROOT, env=dict(env, SHARDS="1"),
                         check=True, capture_output=True, text=True, timeout=300).stdout
    rows = [line for line in out.splitlines() if line.startswith("| SET") or line.startswith("| GET")]
    assert len(rows) == 2, out
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 5 and float(cells[1]) > 0 and float(cells[2]) > 0 and cells[3] == "1.00x", out
    out = subprocess.run(["bash", "Benchmarks/compare.sh", "2000"], cwd=ROOT,
                         env=dict(env, PIPELINES="1", SHARDS="1 2", KEYS_FOR_MEMORY="0"),
                         check=True, capture_output=True, text=True, timeout=300).stdout
    rows = [line for line in out.splitlines() if line.startswith("| SET") or line.startswith("| GET")]
    # Throughput rows, then server CPU per request rows; each with a ratio for the control
    # redis-server and one per Berth.
    assert len(rows) == 4 and all(row.count("x |") == 3 for row in rows), out
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 8 and all(int(cells[i]) > 0 for i in (1, 2, 4, 6)), out

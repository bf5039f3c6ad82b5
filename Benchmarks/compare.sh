#!/usr/bin/env bash
# Side-by-side throughput and memory: berth-server (1 and 2 shards) against redis-server,
# started by this script on free ports of this machine, measured in one run with the same
# redis-benchmark. Prints per-test requests/second and the ratio berth/redis, then the
# server CPU time each server spent per request in the same runs (from the kernel's
# per-thread schedstat): on a machine where the benchmark client and the server share
# few cores, throughput swings with scheduling from run to run, CPU per request much less.
# A second redis-server, measured in the same turns as a control, shows how far two
# identical servers differ in that run: a berth ratio inside that spread is a tie.
#
#   Benchmarks/compare.sh [requests]        (default 200000 requests per test)
#
# Environment: BERTH=path/to/berth-server (default: a fresh release build),
#              PIPELINES="1 16", CLIENTS=50, SHARDS="1 2", KEYS_FOR_MEMORY=1000000
#              (0 skips the memory table), ROUNDS=3 (runs per test and server; medians),
#              TESTS=set,get,... (redis-benchmark -t names), CONTROL=1 (0 leaves out the
#              second redis-server), SERVER_ARGS="--appendonly yes --appendfsync always"
#              (options every server gets, each in its own temporary `dir`: the
#              persistence runs in Benchmarks/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
PIPELINES=${PIPELINES:-"1 16"}
CLIENTS=${CLIENTS:-50}
SHARDS=${SHARDS:-"1 2"}
KEYS_FOR_MEMORY=${KEYS_FOR_MEMORY:-1000000}
ROUNDS=${ROUNDS:-3}
TESTS=${TESTS:-set,get,incr,lpush,lpop,sadd,hset,zadd,mset}
CONTROL=${CONTROL:-1}
SERVER_ARGS=${SERVER_ARGS:-}
DATA_DIRS=$(mktemp -d)

command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
command -v redis-benchmark >/dev/null || ./scripts/setup
if [ -z "${BERTH:-}" ]; then
  swift build -c release --product berth-server >/dev/null
  BERTH=.build/release/berth-server
fi

# shellcheck source=Benchmarks/common.sh
. Benchmarks/common.sh
trap 'xargs -r kill < "$PIDFILE" 2>/dev/null || true; rm -f "$PIDFILE"; sleep 0.2; rm -rf "$DATA_DIRS"' EXIT

start_redis() { # -> "port pid"
  local port dir; port=$(free_port); dir=$(mktemp -d -p "$DATA_DIRS")
  # shellcheck disable=SC2086
  redis-server --port "$port" --save "" --appendonly no --daemonize no --logfile /dev/null --dir "$dir" $SERVER_ARGS >/dev/null 2>&1 &
  local pid=$!; started $pid; wait_port "$port"; echo "$port $pid"
}
start_berth() {
  local port dir; port=$(free_port); dir=$(mktemp -d -p "$DATA_DIRS")
  # shellcheck disable=SC2086
  "$BERTH" --port "$port" --shards "$1" --loglevel warning --dir "$dir" $SERVER_ARGS >/dev/null 2>&1 &
  local pid=$!; started $pid; wait_port "$port"; echo "$port $pid"
}
# Nanoseconds a process's threads have run on a CPU (first field of each schedstat).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ t += $1 } END { printf "%.0f", t }'; }
bench() { # port pid pipeline test -> "requests-per-second server-ns-per-request"
  local before after rps
  before=$(cpu_ns "$2")
  rps=$(redis-benchmark -p "$1" -c "$CLIENTS" -n "$N" -P "$3" -t "$4" -r 100000 --csv 2>/dev/null \
    | awk -F, 'NR==2 { gsub(/"/, ""); print $2 }')
  after=$(cpu_ns "$2")
  echo "$rps $(( (after - before) / N ))"
}

read -r REDIS_PORT REDIS_PID <<< "$(start_redis)"
[ "$CONTROL" = 1 ] && read -r CONTROL_PORT CONTROL_PID <<< "$(start_redis)"
declare -A BERTH_PORTS BERTH_PIDS
for s in $SHARDS; do read -r BERTH_PORTS[$s] BERTH_PIDS[$s] <<< "$(start_berth "$s")"; done

echo "# redis-benchmark -c $CLIENTS -n $N -r 100000 -t $TESTS, $(nproc) CPUs, $(date -u +%Y-%m-%d)"
echo "# redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2), berth $("$BERTH" --version | awk '{print $3}')"
for p in $PIPELINES; do
  echo
  header="| test (-P $p) | redis rps |"
  sep="|---|---|"
  [ "$CONTROL" = 1 ] && { header+=" redis again rps | ratio |"; sep+="---|---|"; }
  for s in $SHARDS; do header+=" berth ${s}sh rps | ratio |"; sep+="---|---|"; done
  echo "$header"; echo "$sep"
  # Servers take turns on each test, ROUNDS times, and each reports its median: a noisy
  # neighbour then slows all of them alike instead of whichever ran during the noise.
  cpu_header="| test (-P $p) | redis ns/req |"
  [ "$CONTROL" = 1 ] && cpu_header+=" redis again ns/req | again/redis |"
  for s in $SHARDS; do cpu_header+=" berth ${s}sh ns/req | berth/redis |"; done
  cpu_rows=()
  for test in ${TESTS//,/ }; do
    declare -A runs=() cpu=()
    for _ in $(seq "$ROUNDS"); do
      read -r r c <<< "$(bench "$REDIS_PORT" "$REDIS_PID" "$p" "$test")"; runs[redis]+=" $r"; cpu[redis]+=" $c"
      for s in $SHARDS; do
        read -r r c <<< "$(bench "${BERTH_PORTS[$s]}" "${BERTH_PIDS[$s]}" "$p" "$test")"; runs[$s]+=" $r"; cpu[$s]+=" $c"
      done
      if [ "$CONTROL" = 1 ]; then
        read -r r c <<< "$(bench "$CONTROL_PORT" "$CONTROL_PID" "$p" "$test")"; runs[again]+=" $r"; cpu[again]+=" $c"
      fi
    done
    rps=$(echo "${runs[redis]}" | median)
    rcpu=$(echo "${cpu[redis]}" | median)
    name=$(redis-benchmark -p "$REDIS_PORT" -n 1 -t "$test" --csv 2>/dev/null | awk -F, 'NR==2 { gsub(/"/, ""); print $1 }')
    row="| $name | ${rps%.*} |"
    cpu_row="| $name | $rcpu |"
    for s in $( [ "$CONTROL" = 1 ] && echo again) $SHARDS; do
      b=$(echo "${runs[$s]}" | median)
      row+=" ${b%.*} | $(awk -v a="$b" -v r="$rps" 'BEGIN { printf "%.2fx", a / r }') |"
      bc=$(echo "${cpu[$s]}" | median)
      cpu_row+=" $bc | $(awk -v a="$bc" -v r="$rcpu" 'BEGIN { printf "%.2fx", (r > 0 ? a / r : 0) }') |"
    done
    echo "$row"
    cpu_rows+=("$cpu_row")
    unset runs cpu
  done
  echo
  echo "$cpu_header" | sed 's/|$/|/'
  echo "$sep"
  printf '%s\n' "${cpu_rows[@]}"
done

[ "$KEYS_FOR_MEMORY" -gt 0 ] || exit 0
echo
echo "# memory: $KEYS_FOR_MEMORY keys SET key:N value-N, INFO memory used_memory after loading"
load() {
  redis-cli -p "$1" flushall >/dev/null
  local before; before=$(redis-cli -p "$1" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
  python3 -c "
import sys
out = sys.stdout.buffer
for i in range($KEYS_FOR_MEMORY):
    k = b'key:%d' % i; v = b'value-%d' % i
    out.write(b'*3\r\n\$3\r\nSET\r\n\$%d\r\n%s\r\n\$%d\r\n%s\r\n' % (len(k), k, len(v), v))
" | redis-cli -p "$1" --pipe >/dev/null
  local after; after=$(redis-cli -p "$1" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
  echo $((after - before))
}
rm_bytes=$(load "$REDIS_PORT")
echo "| server | used_memory delta (bytes) | bytes/key | ratio |"
echo "|---|---|---|---|"
echo "| redis-server | $rm_bytes | $((rm_bytes / KEYS_FOR_MEMORY)) | 1.00x |"
for s in $SHARDS; do
  b=$(load "${BERTH_PORTS[$s]}")
  echo "| berth ${s} shard(s) | $b | $((b / KEYS_FOR_MEMORY)) | $(awk -v a="$b" -v r="$rm_bytes" 'BEGIN { printf "%.2fx", a / r }') |"
done

#!/usr/bin/env bash
# Throughput on many small hashes and sorted sets (Redis's listpacks, Berth's packed
# forms): redis-benchmark writes and reads 100,000 keys of a few elements each, on a
# redis-server and a berth-server (2 shards) side by side in one run, alternating servers
# for ROUNDS rounds; the median requests per second and the ratio berth / redis-server.
#
#   Benchmarks/small-collections.sh
#
# Environment: BERTH=path/to/berth-server (default: a fresh release build), ROUNDS=3,
#              REQUESTS=300000, SHARDS=2.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-300000}
SHARDS=${SHARDS:-2}
# shellcheck source=Benchmarks/common.sh
. Benchmarks/common.sh
need_servers

COMMANDS=("hset h:__rand_int__ f__rand_int__ v" "hget h:__rand_int__ f__rand_int__"
          "zadd z:__rand_int__ __rand_int__ m__rand_int__" "zscore z:__rand_int__ m__rand_int__"
          "zrange z:__rand_int__ 0 -1")
rps() { # port pipeline command...
  local port=$1 p=$2; shift 2
  redis-benchmark -p "$port" -c 50 -n "$REQUESTS" -r 100000 -P "$p" --csv "$@" 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'
}

rport=$(free_port)
redis-server --port "$rport" --save "" --appendonly no --daemonize no --logfile /dev/null >/dev/null 2>&1 &
started $!; wait_port "$rport"
bport=$(free_port)
"$BERTH" --port "$bport" --shards "$SHARDS" --save "" --appendonly no --loglevel warning >/dev/null 2>&1 &
started $!; wait_port "$bport"

declare -A R B
for _ in $(seq "$ROUNDS"); do
  for port in "$rport" "$bport"; do "$REDIS_CLI" -p "$port" flushall >/dev/null; done
  for p in 1 16; do
    for c in "${COMMANDS[@]}"; do
      # shellcheck disable=SC2086
      R["$p $c"]+="$(rps "$rport" "$p" $c) "
      # shellcheck disable=SC2086
      B["$p $c"]+="$(rps "$bport" "$p" $c) "
    done
  done
done

echo "# small collections: redis-benchmark -c 50 -n $REQUESTS -r 100000, median of $ROUNDS, berth $SHARDS shards, $(nproc) CPUs, $(date -u +%Y-%m-%d)"
echo "# redis-server $(redis-server --version | awk '{print $3}' | tr -d 'v='); after the writes: $("$REDIS_CLI" -p "$bport" dbsize) keys, OBJECT ENCODING of a hash and a sorted set: $("$REDIS_CLI" -p "$bport" object encoding "$("$REDIS_CLI" -p "$bport" --scan --pattern 'h:*' | head -1)") $("$REDIS_CLI" -p "$bport" object encoding "$("$REDIS_CLI" -p "$bport" --scan --pattern 'z:*' | head -1)")"
echo "| command | -P | redis rps | berth rps | ratio |"
echo "|---|---|---|---|---|"
for p in 1 16; do
  for c in "${COMMANDS[@]}"; do
    r=$(echo "${R["$p $c"]}" | median); b=$(echo "${B["$p $c"]}" | median)
    echo "| ${c%% *} | $p | ${r%.*} | ${b%.*} | $(awk -v a="$b" -v b="$r" 'BEGIN { printf "%.2fx", a / b }') |"
  done
done

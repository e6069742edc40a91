#!/usr/bin/env bash
# Runs the standard benchmark matrix (docs/PERFORMANCE.md) against a local
# cluster that it starts itself, and writes every result, the summary and a
# latency-versus-load plot to results/<timestamp>/.
#
#   tools/bench.sh [--quick] [--bin-dir DIR] [--build-dir DIR] [--out DIR] [--no-perf]
#                  [--big-rooms | --cluster]
#
#   --quick          a few seconds per run and smaller counts: checks the script
#   --bin-dir DIR    use chat-gateway, chat-worker and chat-bench from DIR (no build)
#   --build-dir DIR  where to build (Release) [/tmp/build-bench]
#   --out DIR        results directory [results/<UTC timestamp>]
#   --no-perf        skip the perf profile of a gateway
#   --big-rooms      only the big-room runs (issue 13), no perf profile
#   --cluster        only the Redis Cluster case (tools/bench/cluster.sh): chat
#                    over clusters of 1 and 3 shards, Redis CPU per message per
#                    shard, the spread over shards, the cost of acks that wait
#                    for a replica
#
# The cluster: redis-server on a free loopback port with persistence off
# (--save '' --appendonly no: the throughput of the scripts, not of the
# disk), 2 gateways and 1 worker, all on 127.0.0.1. Gateways run with
# --rate-per-sec 1000000 --rate-burst 1000000 (the per-connection rate limit
# is not under test) and under prlimit --nofile=200000:200000 (the gateway
# has no flag for its fd limit). Every process is stopped by PID on exit,
# also on failure or Ctrl-C. Needs: redis-server, redis-cli, curl, node,
# prlimit; gnuplot (gnuplot-nox) for the plot; perf (linux-perf) for the
# profile. Takes about 8 minutes (under 1 with --quick).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

quick=0 bin_dir="" build_dir=/tmp/build-bench out="" perf_on=1 big_only=0 cluster=0
while (($#)); do
  case "$1" in
    --quick) quick=1; shift ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-perf) perf_on=0; shift ;;
    --big-rooms) big_only=1 perf_on=0; shift ;;
    --cluster) cluster=1; shift ;;
    -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

for tool in redis-server redis-cli curl node prlimit ss; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is missing (scripts/deps.sh)" >&2; exit 2; }
done

if [ -z "$bin_dir" ]; then
  echo "==> building (Release) in $build_dir"
  cmake -S "$repo" -B "$build_dir" -DCHAT_WERROR=ON -DCMAKE_BUILD_TYPE=Release -DCHAT_TESTS=OFF >/dev/null
  cmake --build "$build_dir" -j"$(nproc)" >/dev/null
  bin_dir=$build_dir/bin
fi
for b in chat-gateway chat-worker chat-bench; do
  [ -x "$bin_dir/$b" ] || { echo "bench.sh: $bin_dir/$b not found" >&2; exit 2; }
done

if ((cluster)); then
  out=${out:-$repo/results/cluster-$(date -u +%Y%m%d-%H%M%S)}
  exec "$repo/tools/bench/cluster.sh" "$bin_dir" "$out" "$( ((quick)) && echo --quick)"
fi

# File descriptors: the gateway has no flag for its limit, so it (and
# chat-bench) run under prlimit. Raising the hard limit needs root with
# CAP_SYS_RESOURCE; without it the hard limit is what we get, and the runs
# that need more connections than it allows are sized down or skipped.
if prlimit --nofile=200000:200000 true 2>/dev/null; then
  nofile=200000
else
  nofile=$(ulimit -Hn)
fi
limit=(prlimit --nofile="$nofile:$nofile")

out=${out:-$repo/results/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out/logs"
state=$(mktemp -d /tmp/chat-bench.XXXXXX)
echo "==> results in $out"

# ---- processes: every one is recorded and stopped by PID ----
# shellcheck source=tools/bench/lib.sh
. "$repo/tools/bench/lib.sh"

wait_ready() { # url pid name
  for _ in $(seq 150); do
    kill -0 "$2" 2>/dev/null || { echo "bench.sh: $3 exited; see $out/logs/" >&2; exit 1; }
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "bench.sh: $3 did not become ready" >&2
  exit 1
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --protected-mode no --save '' --appendonly no \
  --dir "$state" --daemonize no >"$out/logs/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis_url=redis://127.0.0.1:$redis_port

worker_port=$(free_port)
"$bin_dir/chat-worker" --redis "$redis_url" --id w1 --listen "127.0.0.1:$worker_port" \
  2>"$out/logs/worker.log" &
worker_pid=$!
pids+=("$worker_pid")
wait_ready "http://127.0.0.1:$worker_port/readyz" "$worker_pid" worker

# start_gateway ID [OPTION...]: starts a gateway; sets gw_pid and gw_url.
start_gateway() {
  local port id=$1
  shift
  port=$(free_port)
  "${limit[@]}" "$bin_dir/chat-gateway" --listen "127.0.0.1:$port" \
    --redis "$redis_url" --id "$id" --rate-per-sec 1000000 --rate-burst 1000000 \
    --drain-ms 0 --drain-grace-ms 0 --log-level warn "$@" 2>"$out/logs/gateway-$id.log" &
  gw_pid=$!
  pids+=("$gw_pid")
  gw_url=ws://127.0.0.1:$port/ws
  wait_ready "http://127.0.0.1:$port/readyz" "$gw_pid" "gateway $id"
}

stop_pid() { # stops one process we started, by PID
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

start_gateway gw1; gw1_pid=$gw_pid gw1_url=$gw_url
start_gateway gw2; gw2_pid=$gw_pid gw2_url=$gw_url
servers="gw1=$gw1_pid,gw2=$gw2_pid,worker=$worker_pid,redis=$redis_pid"

# ---- the machine ----
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -r)"
  echo "debian: $(cat /etc/debian_version 2>/dev/null || echo unknown)"
  echo "redis: $(redis-server --version | sed 's/^Redis server //')"
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD -- gateway worker common 2>/dev/null || echo ' (with uncommitted changes in gateway/ worker/ common/)')"
  echo "binaries: $bin_dir"
  echo "ephemeral ports: $(cat /proc/sys/net/ipv4/ip_local_port_range | tr '\t' '-')"
  echo "somaxconn: $(cat /proc/sys/net/core/somaxconn)"
  echo "file descriptors per process: $nofile$( ((nofile < 200000)) && echo ' (hard limit; could not raise it: no CAP_SYS_RESOURCE)')"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"
cat "$out/machine.txt"

# ---- runs ----
: >"$out/commands.txt"
# bench NAME ARGS...: one chat-bench run; stdout to NAME.txt, its JSON line to
# NAME.json, progress to NAME.progress. A failed check does not stop the matrix.
bench() {
  local name=$1; shift
  echo "chat-bench $*" >>"$out/commands.txt"
  echo "==> $name: chat-bench $*"
  local rc=0
  # In the background and waited for, so that a signal to this script runs
  # the cleanup at once instead of after the run.
  "${limit[@]}" timeout --kill-after=10 1800 "$bin_dir/chat-bench" "$@" \
    >"$out/$name.txt" 2>"$out/$name.progress" &
  local pid=$!
  pids+=("$pid")
  wait "$pid" || rc=$?
  tail -n 1 "$out/$name.txt" >"$out/$name.json"
  grep -E '^  (deliveries|latency|joined|result|storm|rejoins|churn|server gw|[0-9]+ (of|connections))' \
    "$out/$name.txt" | sed 's/^/    /' || true
  [ "$rc" -eq 0 ] || echo "    (exit status $rc)"
}

if ((quick)); then
  dur=3 idle_n=2000 idle_big=4000 storm_n=1000 conn_dur=3 hold=2 ka_hold=6
else
  dur=10 idle_n=20000 idle_big=50000 storm_n=10000 conn_dur=10 hold=5 ka_hold=30
fi
both="$gw1_url,$gw2_url"
redis_hp=127.0.0.1:$redis_port

# The gateway keeps FD_RESERVE (256) descriptors for itself and answers 503
# past the rest (gateway/main.c); chat-bench needs a few of its own too.
fit=$((nofile - 300))

if ((!big_only)); then
# Fan-out: 1,000 clients in 10 rooms over two gateways, 100-byte messages;
# each message reaches 100 members, so deliveries/s = 100 x messages/s.
# From light load to past what this machine carries: efficiency and
# latency both depend on the load (docs/PERFORMANCE.md).
for target in 5000 25000 50000 100000 200000 400000 600000 800000 1000000; do
  bench "fanout-$target" fanout --url "$both" --clients 1000 --rooms 10 --senders 10 \
    --rate $((target / 100)) --size 100 --duration "$dur" --pids "$servers" --redis "$redis_hp" \
    --quiet
done

# Connections per second: 50 slots over both gateways, connect-upgrade-welcome-close.
bench connect connect --url "$both" --clients 50 --duration "$conn_dur" --pids "$servers" --quiet

# Reconnect storm: every client drops (TCP reset) and rejoins with since at
# once, through the other gateway; 10 more connections keep sending meanwhile.
bench storm storm --url "$both" --clients "$storm_n" --rooms 100 --senders 10 --rate 200 \
  --duration 3 --pids "$servers" --redis "$redis_hp" --quiet

# Idle memory: a fresh gateway per run, so RSS before is that of an empty one.
idle_run() { # name count rooms hold [gateway option...]
  local name=$1 count=$2 rooms=$3 secs=$4
  shift 4
  start_gateway "$name" "$@"
  bench "$name" idle --url "$gw_url" --clients "$count" --rooms "$rooms" --duration "$secs" \
    --pids "$name=$gw_pid" --quiet
  stop_pid "$gw_pid"
}
if ((idle_n > fit)); then
  echo "==> note: $idle_n connections do not fit under the fd limit $nofile: using $fit"
  idle_n=$fit
fi
idle_run idle-20k "$idle_n" 0 "$hold"
idle_run idle-20k-joined "$idle_n" $((idle_n / 10)) "$hold"
# Keepalive: the same connections held through several ping rounds (a ping
# to each every 5 s instead of 25 s), for what pings and pongs cost.
idle_run keepalive-20k "$idle_n" 0 "$ka_hold" --ping-interval-s 5 --ping-timeout-s 12
if ((idle_big <= fit)); then
  idle_run idle-50k "$idle_big" 0 "$hold"
else
  echo "==> idle-50k skipped: $idle_big connections need more than the fd limit $nofile"
  echo "{\"mode\":\"idle\",\"skipped\":\"$idle_big connections need more file descriptors than the hard limit $nofile, which this user cannot raise\",\"connections\":$idle_big}" \
    >"$out/idle-50k.json"
fi
fi # big_only

# Big rooms (issue 13): the same number of joins into rooms of 10, 1,000
# and 10,000 members (the clients over N/size rooms), so that what one join
# costs can be compared as the room grows: Redis's and the gateway's CPU
# over the run, divided by the joins. A fresh gateway per run; the clients
# ask for the member count only ("presence":"count", docs/PROTOCOL.md).
# Between runs the previous rooms' members are waited out (the worker
# removes them when the gateway stops), so that one run's cleanup is not
# counted in the next.
room_empty() { # prefix: waits until no member hash of rooms named prefix-* is left
  for _ in $(seq 600); do
    [ -z "$(redis-cli -p "$redis_port" --scan --pattern "chat:{$1-*}:members" | head -1)" ] && return 0
    sleep 0.1
  done
  echo "    (members of $1-* still listed after 60 s)"
}
bigroom_run() { # name clients rooms presence|- [gateway option...]
  local name=$1 count=$2 rooms=$3 presence=()
  [ "$4" = - ] || presence=(--presence "$4")
  shift 4
  start_gateway "$name" "$@"
  bench "$name" idle --url "$gw_url" --clients "$count" --rooms "$rooms" --duration "$hold" \
    "${presence[@]}" --room-prefix "$name" --pids "$name=$gw_pid,redis=$redis_pid" --quiet
  stop_pid "$gw_pid"
  room_empty "$name"
}
big_n=$((quick ? 2000 : 10000))
((big_n > fit)) && big_n=$fit
for size in 10 1000 "$big_n"; do
  bigroom_run "bigroom-$size" "$big_n" $((big_n / size)) count
done
# The same joins by clients that get a first page of members (no
# "presence" asked), at a page of 100 and of 25: what a page costs Redis per
# join as the room grows (--members-page, docs/PROTOCOL.md).
for page in 100 25; do
  for size in 10 1000 "$big_n"; do
    bigroom_run "bigroom-page$page-$size" "$big_n" $((big_n / size)) - \
      --members-page "$page" --presence-batch-above "$page"
  done
done
# One room filled by clients that want every join as a presence_diff: what
# batching costs when every member is told of every other (n^2/2 names).
bigroom_run "bigroom-diff-$((big_n / 5))" "$((big_n / 5))" 1 diff
# Chat in a room of big_n members over both gateways, 20 msg/s from 2 of
# them, while 200 more members a second join and leave (each stays 1 s):
# every message to every member in order, and its latency.
bench bigroom-chat fanout --url "$both" --clients "$big_n" --rooms 1 --senders 2 --rate 20 \
  --duration "$dur" --presence count --churn-per-sec 200 --churn-hold 1 \
  --room-prefix bigroom-chat --pids "$servers" --redis "$redis_hp" --quiet
# A drop of half of a big room at once, rejoining with since; then the
# room's member list (HTTP, every page) must be right within 10 s of the drop.
bench bigroom-storm storm --url "$both" --clients "$((big_n / 2))" --rooms 1 --senders 2 \
  --rate 20 --duration "$dur" --presence count --presence-within 10 --room-prefix bigroom-storm \
  --pids "$servers" --quiet

# Profile: a gateway under 100,000 deliveries/s. Three looks at gw1 during
# 5 s of a 10 s run: where its CPU goes (perf record, cpu-clock, no call
# graphs: the Release build has no frame pointers), which system calls it
# makes per frame it writes (perf stat on syscall tracepoints, against
# frames_out_total from its /metrics), and how CPU splits between processes.
if ((perf_on)) && command -v perf >/dev/null; then
  echo "==> profile: perf during a 100,000 deliveries/s run"
  gw1_http=${gw1_url%/ws}
  gw1_http=http://${gw1_http#ws://}
  frames_out() { curl -fs "$gw1_http/metrics" | awk '/^chat_gateway_frames_out_total/ {print $2}'; }
  "${limit[@]}" "$bin_dir/chat-bench" fanout --url "$both" --clients 1000 --rooms 10 \
    --rate 1000 --duration 10 --pids "$servers" --quiet >"$out/profile-run.txt" 2>/dev/null &
  bench_pid=$!
  pids+=("$bench_pid")
  sleep 3
  if perf record -e cpu-clock -F 1999 -p "$gw1_pid" -o "$state/gw1.data" -- sleep 2 \
      >"$out/logs/perf.log" 2>&1; then
    perf report -i "$state/gw1.data" --stdio --sort dso 2>/dev/null | grep -E '^ +[0-9]' |
      head -10 >"$out/profile-gw1-by-library.txt" || true
    perf report -i "$state/gw1.data" --stdio --sort dso,sym 2>/dev/null | grep -E '^ +[0-9]' |
      head -40 >"$out/profile-gw1-self.txt" || true
  fi
  f0=$(frames_out)
  calls=syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_write,syscalls:sys_enter_writev
  calls+=,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_read
  calls+=,syscalls:sys_enter_recvfrom,syscalls:sys_enter_poll,syscalls:sys_enter_ppoll
  if perf stat -x, -e "$calls" -p "$gw1_pid" -o "$state/stat.csv" -- sleep 2 >/dev/null 2>&1; then
    f1=$(frames_out)
    frames=$((f1 - f0))
    {
      echo "gw1 over 2 s: $frames frames written to clients (frames_out_total)"
      awk -F, -v f="$frames" '$3 ~ /syscalls/ { sub("syscalls:sys_enter_", "", $3);
        printf "%-12s %10d calls  %6.2f per frame\n", $3, $1, f ? $1 / f : 0 }' "$state/stat.csv"
    } >"$out/profile-gw1-syscalls.txt"
  fi
  if perf record -a -e cpu-clock -F 999 -o "$state/all.data" -- sleep 2 >>"$out/logs/perf.log" 2>&1; then
    perf report -i "$state/all.data" --stdio --sort comm 2>/dev/null | grep -E '^ +[0-9]' |
      head -12 >"$out/profile-by-process.txt" || true
  fi
  for f in profile-by-process profile-gw1-by-library profile-gw1-syscalls; do
    [ -s "$out/$f.txt" ] && { echo "    $f:"; sed 's/^/      /' "$out/$f.txt" | head -9; }
  done
  wait "$bench_pid" || true
fi

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
node "$repo/tools/bench/summarize.mjs" "$out"
if command -v gnuplot >/dev/null; then
  gnuplot -e "dir='$out'" "$repo/tools/bench/latency.gp" && echo "==> plot: $out/latency-vs-load.png"
else
  echo "gnuplot not found (apt-get install gnuplot-nox): no plot"
fi
echo "==> summary: $out/summary.md"

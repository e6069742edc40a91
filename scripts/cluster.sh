#!/usr/bin/env bash
# Starts a local chat cluster on loopback, without Docker: Redis, workers,
# gateways and haproxy in front of them (from this checkout and Debian's
# packages, installing and building what is missing), and prints the URL of
# the web chat. A process that dies (try `kill -9` on a gateway to watch a
# failover) is restarted with backoff, and the terminal says so. Only
# Ctrl-C stops everything, gateways first so that they drain.
#
#   scripts/cluster.sh [--gateways N] [--workers N] [--base-port P] [--redis-cluster]
#                      [--bin-dir DIR] [--state-dir DIR] [--print-haproxy-cfg]
#
# Defaults: 3 gateways, 2 workers, P = 8000. Ports: haproxy (the URL) on P,
# gateways on P+1.., workers' HTTP on P+101.., Redis on P+200. With
# --redis-cluster, a 6-node Redis Cluster instead of one Redis: 3 primaries
# and 3 replicas on P+200..P+205 (cluster bus on those + 10000), made with
# redis-cli --cluster create on the first start; kill -9 a primary to watch
# its replica take over (and this script restart the old one, which comes
# back as a replica). --bin-dir
# uses the binaries in DIR and skips installing and building. Logs, the
# haproxy configuration and Redis data go to the state dir (.cluster/).
# --print-haproxy-cfg prints the haproxy configuration and exits.
# The PIDs of the running processes are in the state dir's pids file.
set -euo pipefail
cd "$(dirname "$0")/.."

gateways=3 workers=2 base=8000 bin="" state=$PWD/.cluster print_cfg=0 rcluster=0
while (($#)); do
  case "$1" in
    --gateways) gateways=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --base-port) base=$2; shift 2 ;;
    --bin-dir) bin=$2; shift 2 ;;
    --state-dir) state=$2; shift 2 ;;
    --print-haproxy-cfg) print_cfg=1; shift ;;
    --redis-cluster) rcluster=1; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
for v in gateways workers base; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "--${v/base/base-port} needs a number" >&2; exit 2; }
done
((gateways >= 1 && gateways <= 99 && workers >= 1 && workers <= 99)) ||
  { echo "--gateways and --workers: 1 to 99" >&2; exit 2; }
((base >= 1 && base + 10205 <= 65535)) || { echo "--base-port: 1 to 55330" >&2; exit 2; }

haproxy_port=$base
redis_port=$((base + 200))
redis_url=redis://127.0.0.1:$redis_port
# What the workers and gateways are told: one Redis, or the cluster's seeds.
redis_ports=("$redis_port")
redis_flag=(--redis "$redis_url")
if ((rcluster)); then
  redis_ports=()
  for i in 0 1 2 3 4 5; do redis_ports+=($((redis_port + i))); done
  redis_flag=(--redis-cluster "$(printf '127.0.0.1:%s,' "${redis_ports[@]}" | sed 's/,$//')")
fi
gw_port() { echo $((base + $1)); }
wk_port() { echo $((base + 100 + $1)); }

haproxy_cfg() {
  local addrs=()
  for i in $(seq "$gateways"); do addrs+=("127.0.0.1:$(gw_port "$i")"); done
  deploy/haproxy/local-cfg.sh --bind "127.0.0.1:$haproxy_port" \
    --stats-socket "$state/haproxy.sock" "${addrs[@]}"
}
if ((print_cfg)); then haproxy_cfg; exit 0; fi

if [ -z "$bin" ]; then
  scripts/deps.sh
  scripts/build.sh build >/dev/null
  bin=$PWD/build/bin
fi
bin=$(cd "$bin" && pwd)
for b in chat-gateway chat-worker; do
  [ -x "$bin/$b" ] || { echo "$bin/$b: not found (build first, or fix --bin-dir)" >&2; exit 1; }
done
for b in redis-server haproxy curl; do
  command -v "$b" >/dev/null || { echo "$b not found: run scripts/deps.sh" >&2; exit 1; }
done
mkdir -p "$state"
state=$(cd "$state" && pwd)

# Refuse to start half a cluster on ports someone else holds.
busy=()
for p in "$haproxy_port" "${redis_ports[@]}" $(for i in $(seq "$gateways"); do gw_port "$i"; done) \
         $(for i in $(seq "$workers"); do wk_port "$i"; done); do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && busy+=("$p")
done
if ((${#busy[@]})); then
  echo "ports already in use on 127.0.0.1: ${busy[*]} (another cluster? try --base-port)" >&2
  exit 1
fi

# Every process gets its own process group (job control), so a Ctrl-C in the
# terminal reaches only this script, which then stops them in order.
set -m
gw_pids=() wk_pids=() hp_pid="" redis_pids=()

# shellcheck disable=SC2317 # stop_group and stop run from the traps
stop_group() { # timeout_s pid... : SIGTERM, wait up to timeout, then SIGKILL
  local t=$1; shift
  local pids=()
  for pid in "$@"; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && pids+=("$pid"); done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq $((t * 10))); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "pid $pid did not stop in ${t}s; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  wait "${pids[@]}" 2>/dev/null || true
}

# shellcheck disable=SC2317
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping: gateways (draining), workers, haproxy, Redis..."
  # Gateways drain while Redis still answers (leave events, unregistering);
  # haproxy stays until they have closed their clients themselves.
  stop_group 15 "${gw_pids[@]}"
  stop_group 10 "${wk_pids[@]}"
  stop_group 5 "$hp_pid"
  stop_group 10 "${redis_pids[@]}"
  echo "stopped."
}
trap stop EXIT
trap 'stop; exit 0' INT TERM

wait_http() { # url name pid
  for _ in $(seq 100); do
    curl -fs -o /dev/null "$1" && return 0
    kill -0 "$3" 2>/dev/null || { echo "$2 exited; see $state/" >&2; exit 1; }
    sleep 0.1
  done
  echo "$2 did not become ready within 10 s; see $state/" >&2
  exit 1
}

# One function per kind of process, so that the supervisor below can start
# it again the same way. Each sets the process's PID in its slot.
start_redis() { # i: one Redis (0), or node i of the cluster
  local port=${redis_ports[$1]} dir=$state args=()
  if ((rcluster)); then
    dir=$state/redis-$port
    mkdir -p "$dir"
    # require-full-coverage no: a shard failing over stops only that shard.
    args=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000
      --cluster-require-full-coverage no)
  fi
  local log=$state/redis.log
  ((rcluster)) && log=$state/redis-$port.log
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --save '' \
    "${args[@]}" >>"$log" 2>&1 &
  redis_pids[$1]=$!
}
start_worker() { # i
  "$bin/chat-worker" "${redis_flag[@]}" --id "w$1" --listen "127.0.0.1:$(wk_port "$1")" \
    2>>"$state/worker$1.log" &
  wk_pids[$1 - 1]=$!
}
start_gateway() { # i
  "$bin/chat-gateway" --listen "127.0.0.1:$(gw_port "$1")" "${redis_flag[@]}" --id "gw$1" \
    --web-root "$PWD/web" --drain-grace-ms 2000 2>>"$state/gateway$1.log" &
  gw_pids[$1 - 1]=$!
}
start_haproxy() {
  haproxy -W -db -f "$state/haproxy.cfg" >>"$state/haproxy.log" 2>&1 &
  hp_pid=$!
}

for i in "${!redis_ports[@]}"; do start_redis "$i"; done
for i in "${!redis_ports[@]}"; do
  port=${redis_ports[$i]}
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    kill -0 "${redis_pids[$i]}" 2>/dev/null ||
      { echo "redis-server exited; see $state/" >&2; exit 1; }
    sleep 0.1
  done
done
if ((rcluster)); then
  # The first start makes the cluster; later ones find it in nodes.conf.
  if [ "$(redis-cli -p "$redis_port" cluster info | tr -d '\r' |
      awk -F: '/cluster_known_nodes/ {print $2}')" = 1 ]; then
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${redis_ports[@]}") \
      --cluster-replicas 1 --cluster-yes >>"$state/redis-cluster-create.log" 2>&1 ||
      { echo "redis-cli --cluster create failed; see $state/redis-cluster-create.log" >&2; exit 1; }
  fi
  for _ in $(seq 300); do
    redis-cli -p "$redis_port" cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
fi

for i in $(seq "$workers"); do start_worker "$i"; done
for i in $(seq "$gateways"); do start_gateway "$i"; done
for i in $(seq "$workers"); do
  wait_http "http://127.0.0.1:$(wk_port "$i")/readyz" "worker w$i" "${wk_pids[$((i - 1))]}"
done
for i in $(seq "$gateways"); do
  wait_http "http://127.0.0.1:$(gw_port "$i")/readyz" "gateway gw$i" "${gw_pids[$((i - 1))]}"
done

haproxy_cfg >"$state/haproxy.cfg"
start_haproxy
wait_http "http://127.0.0.1:$haproxy_port/healthz" "haproxy" "$hp_pid"


# ---- supervision: restart what dies, with backoff, and say so ----

declare -A started_at=() failures=()
now_s() { date +%s; }
write_pids() {
  {
    for i in "${!redis_ports[@]}"; do echo "$(redis_name "$i") ${redis_pids[$i]}"; done
    echo "haproxy $hp_pid"
    for i in $(seq "$workers"); do echo "worker w$i ${wk_pids[$((i - 1))]}"; done
    for i in $(seq "$gateways"); do echo "gateway gw$i ${gw_pids[$((i - 1))]}"; done
  } >"$state/pids"
}
redis_name() { # i: "redis", or "redis 8203" for a node of the cluster
  if ((rcluster)); then echo "redis ${redis_ports[$1]}"; else echo redis; fi
}
# The name ("gateway gw2") and start command ("start_gateway 2") of a PID.
name_of() {
  local pid=$1 i
  for i in "${!redis_ports[@]}"; do
    [ "$pid" = "${redis_pids[$i]}" ] && { echo "$(redis_name "$i")|start_redis $i"; return; }
  done
  [ "$pid" = "$hp_pid" ] && { echo "haproxy|start_haproxy"; return; }
  for i in $(seq "$workers"); do
    [ "$pid" = "${wk_pids[$((i - 1))]}" ] && { echo "worker w$i|start_worker $i"; return; }
  done
  for i in $(seq "$gateways"); do
    [ "$pid" = "${gw_pids[$((i - 1))]}" ] && { echo "gateway gw$i|start_gateway $i"; return; }
  done
}
all_pids() { echo "${redis_pids[@]}" "$hp_pid" "${wk_pids[@]}" "${gw_pids[@]}"; }
pid_started_by() { # "start_gateway 2" -> that gateway's PID now
  # shellcheck disable=SC2086 # split into the function and its argument
  set -- $1
  case $1 in
    start_redis) echo "${redis_pids[$2]}" ;;
    start_haproxy) echo "$hp_pid" ;;
    start_worker) echo "${wk_pids[$2 - 1]}" ;;
    start_gateway) echo "${gw_pids[$2 - 1]}" ;;
  esac
}
ready_url() { # "start_gateway 2" -> its /readyz, if it has one
  # shellcheck disable=SC2086
  set -- $1
  case $1 in
    start_worker) echo "http://127.0.0.1:$(wk_port "$2")/readyz" ;;
    start_gateway) echo "http://127.0.0.1:$(gw_port "$2")/readyz" ;;
    start_haproxy) echo "http://127.0.0.1:$haproxy_port/healthz" ;;
  esac
}
t0=$(now_s)
for p in $(all_pids); do started_at[$p]=$t0; done
write_pids

echo
if ((rcluster)); then
  where="a Redis Cluster on 127.0.0.1:${redis_ports[0]}-${redis_ports[5]} (3 primaries, 3 replicas)"
else
  where="Redis on 127.0.0.1:$redis_port"
fi
echo "chat cluster is up: $where, $workers worker(s), $gateways gateway(s) behind haproxy"
echo "  web chat:  http://127.0.0.1:$haproxy_port/"
echo "  gateways:  $(for i in $(seq "$gateways"); do printf '127.0.0.1:%s ' "$(gw_port "$i")"; done)"
echo "  haproxy:   $state/haproxy.cfg, runtime API on $state/haproxy.sock"
echo "  logs:      $state/"
echo "  failover:  kill -9 a gateway (pids in $state/pids); the page moves to another, and this script restarts it"
echo "Ctrl-C stops everything."

# Backoff: 0.5 s, 1, 2, 4, 8, at most 10 s between restarts of one process;
# one that then stays up for 30 s is forgiven its earlier failures.
set +e
while :; do
  dead=""
  # No command substitution here: while all is well the script has no
  # child but the cluster's processes.
  pids=("${redis_pids[@]}" "$hp_pid" "${wk_pids[@]}" "${gw_pids[@]}")
  wait -n -p dead "${pids[@]}"
  status=$?
  if [ -z "$dead" ]; then
    sleep 0.5 # nothing to wait for (cannot happen while all run): no busy loop
    continue
  fi
  IFS='|' read -r name cmd <<<"$(name_of "$dead")"
  [ -n "$name" ] || continue
  key=${name// /_}
  lived=$(($(now_s) - ${started_at[$dead]:-0}))
  ((lived >= 30)) && failures[$key]=0
  n=${failures[$key]:-0}
  failures[$key]=$((n + 1))
  delay_ms=$((500 * (1 << (n < 5 ? n : 5))))
  ((delay_ms > 10000)) && delay_ms=10000
  why="status $status"
  ((status > 128)) && why="killed by signal $((status - 128))"
  delay=$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))
  echo "$(date +%T) $name (pid $dead) exited ($why); restarting in ${delay} s (restart $((n + 1)))"
  sleep "$delay"
  $cmd # unquoted: "start_gateway 2" is the function and its argument
  new=$(pid_started_by "$cmd")
  started_at[$new]=$(now_s)
  write_pids
  url=$(ready_url "$cmd")
  ready=""
  for _ in $(seq 100); do
    if [ -z "$url" ] || curl -fs -o /dev/null "$url"; then ready=1; break; fi
    kill -0 "$new" 2>/dev/null || break
    sleep 0.1
  done
  if [ -n "$ready" ]; then
    echo "$(date +%T) $name is back (pid $new)"
  else
    echo "$(date +%T) $name (pid $new) is not ready; see $state/"
  fi
done

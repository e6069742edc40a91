#!/usr/bin/env bash
# The Redis Cluster case of tools/bench.sh (run as `tools/bench.sh
# --cluster`): chat over Redis Clusters of 1 and of 3 shards (a primary and
# a replica each, cluster-require-full-coverage no), two gateways with
# --redis-cluster, chat-bench fanout over many small rooms at rising rates.
# For each run it reports, per shard: the chat messages it stored (the
# publish script's ZADDs, from INFO commandstats), Redis CPU per message
# (the primary's used_cpu_user+sys from INFO cpu, over those calls), and its
# share of all messages (how evenly rooms spread over the shards); and the
# highest rate each cluster size carried with nothing lost and p99 under
# 50 ms. Then the cost of acks that wait for a replica: the same rate with
# --ack-replicas 1 (the default) and 0.
#
#   tools/bench/cluster.sh BIN_DIR OUT_DIR [--quick]
#
# Every process is started here and stopped by PID on exit.
set -euo pipefail
bin_dir=$1 out=$2 quick=${3:-}
mkdir -p "$out/logs"
state=$(mktemp -d /tmp/chat-bench-cluster.XXXXXX)

# shellcheck source=tools/bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ "$quick" = --quick ]; then
  dur=3 rates="1000 3000" ack_rate=1000
else
  dur=10 rates="2000 5000 10000 15000 20000" ack_rate=5000
fi

# start_cluster SHARDS: 2 x SHARDS redis-server nodes joined as SHARDS
# primaries with a replica each; sets ports (primaries first) and seeds.
start_cluster() {
  local shards=$1 n=$(($1 * 2)) i port dir
  ports=() cluster_pids=()
  for i in $(seq "$n"); do
    port=$(free_port --bus)
    dir=$state/redis-$port
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --protected-mode no --save '' --appendonly no \
      --dir "$dir" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 1000 --cluster-require-full-coverage no \
      >"$out/logs/redis-$port.log" 2>&1 &
    pids+=("$!")
    cluster_pids+=("$!")
    ports+=("$port")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  local addrs=()
  for port in "${ports[@]}"; do addrs+=("127.0.0.1:$port"); done
  if ((shards >= 3)); then
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
      >"$out/logs/cluster-create-$shards.log" 2>&1
  else
    # redis-cli --cluster create wants 3 primaries: one shard by hand.
    redis-cli -p "${ports[0]}" cluster addslotsrange 0 16383 >/dev/null
    redis-cli -p "${ports[1]}" cluster meet 127.0.0.1 "${ports[0]}" >/dev/null
    local id
    id=$(redis-cli -p "${ports[0]}" cluster myid)
    for _ in $(seq 100); do
      redis-cli -p "${ports[1]}" cluster replicate "$id" >/dev/null 2>&1 && break
      sleep 0.1
    done
  fi
  for _ in $(seq 200); do
    redis-cli -p "${ports[0]}" cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  # Until a replica has finished its first sync, WAIT counts it out: acks
  # would wait their whole timeout. Wait for every primary's replica online.
  local p online
  for _ in $(seq 300); do
    online=1
    for p in $(primaries); do
      redis-cli -p "$p" info replication | grep -q 'state=online' || online=0
    done
    ((online)) && break
    sleep 0.1
  done
  seeds=$(IFS=,; echo "${addrs[*]}")
}

# The primaries (port, pid) as the cluster says now.
primaries() {
  redis-cli -p "${ports[0]}" cluster nodes | awk '$3 ~ /master/ && $9 != "" {split($2, a, "[:@]"); print a[2]}'
}

gateways() { # extra gateway flags...
  gw_urls="" gw_pids=()
  for id in g1 g2; do
    local port
    port=$(free_port)
    "$bin_dir/chat-gateway" --listen "127.0.0.1:$port" --redis-cluster "$seeds" --id "$id" \
      --rate-per-sec 1000000 --rate-burst 1000000 --drain-ms 0 --drain-grace-ms 0 \
      --log-level warn "$@" 2>>"$out/logs/gateway-$id.log" &
    pids+=("$!")
    gw_pids+=("$!")
    for _ in $(seq 150); do curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
    gw_urls+="${gw_urls:+,}ws://127.0.0.1:$port/ws"
  done
}

stop_gateways() {
  for pid in "${gw_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${gw_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

stop_cluster() {
  for pid in "${cluster_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
}

# stats PORT: "<chat messages stored> <redis cpu seconds>" of one primary.
# Messages are counted by the ZADD the publish script makes into history
# (no other script writes history; commands run by scripts are counted).
stats() {
  local calls cpu
  calls=$(redis-cli -p "$1" info commandstats | tr -d '\r' |
    awk -F'[=,:]' '/^cmdstat_zadd:/ {n += $3} END {print n + 0}')
  cpu=$(redis-cli -p "$1" info cpu | tr -d '\r' |
    awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.4f", s}')
  echo "$calls $cpu"
}

summary=$out/cluster-summary.md
{
  echo "# Redis Cluster case ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, load before $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "| shards | msg/s offered | acked msg/s | loss | p50 / p99 ms | per shard: share of messages, Redis CPU µs per message |"
  echo "|---:|---:|---:|---:|---|---|"
} >"$summary"

# run NAME SHARDS RATE: one fanout run, 600 clients in 300 rooms (two per
# room, on different gateways), every client also a sender.
run() {
  local name=$1 shards=$2 rate=$3 p before=() after=() prim
  mapfile -t prim < <(primaries)
  for p in "${prim[@]}"; do before+=("$(stats "$p")"); done
  echo "chat-bench fanout --url $gw_urls --clients 600 --rooms 300 --senders 600 --rate $rate --size 100 --duration $dur" \
    >>"$out/commands.txt"
  "$bin_dir/chat-bench" fanout --url "$gw_urls" --clients 600 --rooms 300 --senders 600 \
    --rate "$rate" --size 100 --duration "$dur" --room-prefix "$name" --quiet \
    >"$out/$name.txt" 2>"$out/$name.progress" || true
  tail -n 1 "$out/$name.txt" >"$out/$name.json"
  for p in "${prim[@]}"; do after+=("$(stats "$p")"); done
  node -e '
    const [json, shards, rate, before, after] = process.argv.slice(1);
    const r = JSON.parse(require("fs").readFileSync(json, "utf8"));
    const b = before.split(";").map((x) => x.split(" ").map(Number));
    const a = after.split(";").map((x) => x.split(" ").map(Number));
    const calls = a.map((x, i) => x[0] - b[i][0]);
    const total = calls.reduce((s, x) => s + x, 0) || 1;
    const per = a.map((x, i) => `${(100 * calls[i] / total).toFixed(0)}%, ${
      calls[i] ? ((x[1] - b[i][1]) * 1e6 / calls[i]).toFixed(1) : "-"} µs`).join("; ");
    const l = r.latency_us || {};
    console.log(`| ${shards} | ${rate} | ${(r.acked / r.duration_s).toFixed(0)} | ${r.loss} | ` +
      `${((l.p50 || 0) / 1000).toFixed(2)} / ${((l.p99 || 0) / 1000).toFixed(2)} | ${per} |`);
  ' "$out/$name.json" "$shards" "$rate" "$(IFS=';'; echo "${before[*]}")" \
    "$(IFS=';'; echo "${after[*]}")"
}

for shards in 1 3; do
  echo "==> cluster of $shards shard(s)"
  start_cluster "$shards"
  gateways
  for rate in $rates; do run "cluster$shards-$rate" "$shards" "$rate" | tee -a "$summary"; done
  stop_gateways
  stop_cluster
done

# What waiting for a replica costs: a rate well within what the machine
# carries, 3 shards, acks with and without WAIT.
echo "==> acks with and without a replica's confirmation"
start_cluster 3
{
  echo
  echo "Acks that wait for a replica (WAIT, grouped) against acks at once, 3 shards:"
  echo
  echo "| --ack-replicas | shards | msg/s offered | acked msg/s | loss | p50 / p99 ms | per shard |"
  echo "|---:|---:|---:|---:|---:|---|---|"
} >>"$summary"
for acks in 1 0; do
  gateways --ack-replicas "$acks"
  run "acks$acks" 3 "$ack_rate" | sed "s/^/| $acks /" | tee -a "$summary"
  stop_gateways
done
stop_cluster
echo "==> $summary"

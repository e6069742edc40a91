#!/usr/bin/env bash
# Starts a local chat cluster on loopback, without Docker: Redis, workers and
# gateways from this checkout (installing and building what is missing), and
# prints the URL of the web chat. Ctrl-C stops everything.
#
#   scripts/cluster.sh [--gateways N] [--workers N] [--base-port P]
#
# Ports: gateways on P+1.., workers' HTTP on P+101.., Redis on P+200
# (P defaults to 8000). Logs and Redis data go to .cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."

gateways=2 workers=1 base=8000
while (($#)); do
  case "$1" in
    --gateways) gateways=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --base-port) base=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

scripts/deps.sh
scripts/build.sh build >/dev/null
bin=$PWD/build/bin
state=$PWD/.cluster
mkdir -p "$state"
redis_port=$((base + 200))
redis_url=redis://127.0.0.1:$redis_port
pids=()

stop() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

wait_http() { # url, name
  for _ in $(seq 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$2 did not become ready; see $state/*.log" >&2; exit 1
}

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$state" --appendonly yes \
  --save '' >"$state/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

for i in $(seq "$workers"); do
  "$bin/chat-worker" --redis "$redis_url" --id "w$i" --listen "127.0.0.1:$((base + 100 + i))" \
    2>"$state/worker$i.log" &
  pids+=($!)
done
for i in $(seq "$gateways"); do
  "$bin/chat-gateway" --listen "127.0.0.1:$((base + i))" --redis "$redis_url" --id "gw$i" \
    --web-root "$PWD/web" 2>"$state/gateway$i.log" &
  pids+=($!)
done
for i in $(seq "$gateways"); do wait_http "http://127.0.0.1:$((base + i))/readyz" "gateway gw$i"; done

echo
echo "chat cluster is up: Redis on 127.0.0.1:$redis_port, $workers worker(s), $gateways gateway(s)"
for i in $(seq "$gateways"); do echo "  web chat:  http://127.0.0.1:$((base + i))/"; done
echo "  logs:      $state/"
echo "Ctrl-C stops everything."
wait -n || true

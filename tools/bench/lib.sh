# Shared by tools/bench.sh and tools/bench/cluster.sh (sourced): every
# process they start is recorded in pids and stopped by PID on exit (also on
# failure or Ctrl-C), the scratch directory $state goes with them, and
# free_port hands out loopback ports nobody listens on.

pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port [--bus]: a free port in 20000-49999; with --bus, port + 10000
# is free too (a Redis Cluster node's bus).
used_ports=" "
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    case "$used_ports" in *" $p "*) continue ;; esac
    [ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ] || continue
    [ "${1:-}" != --bus ] || [ -z "$(ss -Htan "sport = :$((p + 10000))" 2>/dev/null)" ] || continue
    used_ports+="$p "
    echo "$p"
    return 0
  done
  echo "no free port found" >&2
  return 1
}

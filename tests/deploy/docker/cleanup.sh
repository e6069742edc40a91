#!/usr/bin/env bash
# Removes everything the docker compose test left under its directory, even
# after the test itself was killed: its dockerd (by the pid in its pid
# file), any process still naming the directory on its command line
# (containerd, containerd-shim) together with its children (the containers'
# init processes), the mounts under the directory, then the directory.
# Only ever acts on a directory made by the test (/tmp/chat-docker-test.*).
#
#   tests/deploy/docker/cleanup.sh /tmp/chat-docker-test.XXXXXX
set -uo pipefail

dir=${1:?usage: cleanup.sh DIR}
dir=$(readlink -f "$dir") || exit 0
case "$dir" in
  /tmp/chat-docker-test.*) ;;
  *) echo "cleanup.sh: refusing to touch $dir (not a /tmp/chat-docker-test.* directory)" >&2; exit 2 ;;
esac
[ -d "$dir" ] || exit 0

alive() { kill -0 "$1" 2>/dev/null; }

# 1. dockerd: SIGTERM (it stops its containers' shims and unmounts), then KILL.
if [ -s "$dir/docker.pid" ]; then
  pid=$(cat "$dir/docker.pid")
  if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 200); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && { echo "cleanup.sh: dockerd $pid ignored SIGTERM for 20 s; SIGKILL" >&2; kill -KILL "$pid"; }
  fi
fi

# 2. Whatever else still names the directory (a shim outlives dockerd), and
#    its children: a container's init, whose death ends its pid namespace.
children_of() {
  local parent=$1 p
  for p in /proc/[0-9]*; do
    [ "$(awk '{print $4}' "$p/stat" 2>/dev/null)" = "$parent" ] && echo "${p#/proc/}"
  done
}
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [ "$pid" = "$$" ] && continue
  if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$dir/"; then
    for c in $(children_of "$pid"); do
      echo "cleanup.sh: killing leftover pid $c (child of $pid)" >&2
      kill -KILL "$c" 2>/dev/null
    done
    echo "cleanup.sh: killing leftover pid $pid: $(tr '\0' ' ' <"$p/cmdline" | cut -c1-120)" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
done

# 3. Mounts under the directory (overlay layers, shm), innermost first.
for _ in 1 2 3; do
  mounts=$(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
  [ -z "$mounts" ] && break
  while read -r m; do umount -l "$m" 2>/dev/null || true; done <<<"$mounts"
done

# 4. The directory.
rm -rf --one-file-system "$dir" 2>/dev/null || rm -rf "$dir"
[ ! -e "$dir" ] || { echo "cleanup.sh: could not remove $dir" >&2; exit 1; }

#!/usr/bin/env bash
# Checks, from the lab machine, that a server-side fault bites: the NFS
# server machine's nfslab daemon, reached through its socket forwarded over
# SSH (server-fault.sh), drops the server's NFS traffic with this machine
# (--local-port 2049: the server's own port, so the SSH forward is spared).
# A writer (64 KiB, O_SYNC, every second) on a soft mount of the server
# must fail while the fault is in and write again after the heal.
# Run as root after scripts/vagrant-lab link; CI runs it (vagrant-lab ci).
set -euo pipefail
export LC_ALL=C
server=$(cat /etc/nfslab-server)
# This machine's address as the server sees it.
lab=$(ip -o -4 route get "$server" | sed -n 's/.* src \([0-9.]*\).*/\1/p')
[[ -n $lab ]] || { echo "server-fault-check: no source address towards $server" >&2; exit 1; }
mnt=/mnt/nfslab-sfcheck
log=$(mktemp)
here=$(dirname "$(readlink -f "$0")")
writer=
cleanup() {
  [[ -z $writer ]] || { kill "$writer" 2>/dev/null || true; wait "$writer" 2>/dev/null || true; }
  "$here/server-fault.sh" heal --all --faults-only >/dev/null 2>&1 || true
  umount -f -l "$mnt" 2>/dev/null || true
  rmdir "$mnt" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT
mkdir -p "$mnt"
mount -t nfs4 -o soft,timeo=10,retrans=2 "$server:/" "$mnt"
# At most 150 writes: the whole check is bounded by it.
(
  for _ in $(seq 1 150); do
    if dd if=/dev/zero of="$mnt/sfcheck" bs=64k count=1 oflag=sync status=none 2>/dev/null; then
      echo "ok $(date +%s)" >>"$log"
    else
      echo "fail $(date +%s)" >>"$log"
    fi
    sleep 1
  done
) &
writer=$!
sleep 3
grep -q '^ok' "$log" || { echo "server-fault-check: the writer did not write before the fault" >&2; exit 1; }
applied=$(date +%s)
out=$("$here/server-fault.sh" drop --dst "$lab" --local-port 2049 --dir both --for 60s)
echo "$out"
grep -q '^bites:' <<<"$out" || { echo "server-fault-check: the server-side drop did not bite" >&2; exit 1; }
# after EPOCH WORD: whether the writer logged WORD at or after EPOCH;
# wait_for WORD EPOCH SECONDS polls it once a second.
after() { awk -v t="$1" -v w="$2" '$1 == w && $2 >= t { f = 1 } END { exit !f }' "$log"; }
wait_for() {
  local i
  for ((i = 0; i < $3; i++)); do after "$2" "$1" && return 0; sleep 1; done
  return 1
}
wait_for fail "$applied" 60 || { echo "server-fault-check: no write failed within 60 s of the drop" >&2; exit 1; }
echo "server-fault-check: a write failed $(( $(awk '$1 == "fail" { print $2; exit }' "$log") - applied )) s after the drop was sent"
"$here/server-fault.sh" heal --all --faults-only
healed=$(date +%s)
wait_for ok "$healed" 60 || { echo "server-fault-check: no write succeeded within 60 s of the heal" >&2; exit 1; }
echo "server-fault-check: writing again $(( $(awk -v t="$healed" '$1 == "ok" && $2 >= t { print $2; exit }' "$log") - healed )) s after the heal"

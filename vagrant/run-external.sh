#!/usr/bin/env bash
# Runs the shipped NFS scenarios on the lab machine against the external
# NFS server machine (the seed's second set-up). Reports go to /nfslab/runs.
# Usage: run-external.sh [SCENARIO...]   (default: every nfs-* scenario)
set -euo pipefail
server=$(cat /etc/nfslab-server)
cd /nfslab
if (($# == 0)); then
  # The localhost pitfall is about a server on the client host itself.
  set -- $(cd scenarios && ls nfs-*.yaml | sed 's/\.yaml$//' | grep -v localhost-pitfall)
fi
status=0
for name in "$@"; do
  args=(run "scenarios/${name}.yaml" --out runs
        --set storage.server.kind=external
        --set "storage.server.address=${server}"
        --set storage.server.export=/)
  echo "== nfslab ${args[*]}"
  nfslab "${args[@]}" || status=1
done
nfslab heal --all
exit "$status"

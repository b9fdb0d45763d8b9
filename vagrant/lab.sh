#!/usr/bin/env bash
# Provisions the lab machine: iptables, the NFS client, a JRE for the
# journal probe, and nfslab: the static binary built on the host (uploaded
# to /tmp/nfslab by the Vagrantfile) and the probe compiled on the host
# (/tmp/probecache, from `nfslab probe build --cache-dir bin/probecache`).
# No Go toolchain and no javac here. The nfslab box has every package
# already; a public Debian box gets them from its mirror.
# Usage: lab.sh NFS_SERVER_IP
set -euo pipefail
server=${1:?usage: lab.sh NFS_SERVER_IP}
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
want=(iptables iproute2 conntrack nfs-common procps openjdk-17-jre-headless)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "lab: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [[ ! -x /tmp/nfslab ]]; then
  echo "lab: /tmp/nfslab missing: build bin/nfslab on the host (CGO_ENABLED=0 make build) and vagrant provision" >&2
  exit 1
fi
install -m 0755 /tmp/nfslab /usr/local/bin/nfslab
if [[ -d /tmp/probecache ]]; then
  install -d /var/cache/nfslab/probe
  cp -a /tmp/probecache/. /var/cache/nfslab/probe/
fi
echo "$server" >/etc/nfslab-server
# The NFS server must answer before any scenario runs (both machines are
# provisioned in parallel; under TCG the server takes minutes).
for _ in $(seq 1 150); do
  if timeout 2 bash -c "exec 3<>/dev/tcp/${server}/2049" 2>/dev/null; then
    echo "lab: NFS server ${server}:2049 answers"
    exit 0
  fi
  sleep 2
done
echo "lab: NFS server ${server}:2049 does not answer" >&2
exit 1

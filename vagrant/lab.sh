#!/usr/bin/env bash
# Provisions the lab machine: podman, iptables, the NFS client, a JDK for
# the journal probe, Go (the version go.mod asks for, from go.dev), and
# nfslab built from the synced checkout at /nfslab.
# Usage: lab.sh NFS_SERVER_IP
set -euo pipefail
server=${1:?usage: lab.sh NFS_SERVER_IP}
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  podman runc iptables iproute2 conntrack nfs-common fuse3 procps \
  openjdk-17-jdk-headless ca-certificates curl git make
goversion=$(awk '$1 == "go" { print $2; exit }' /nfslab/go.mod)
if [[ "$(/usr/local/go/bin/go env GOVERSION 2>/dev/null || true)" != "go${goversion}" ]]; then
  curl -fsSL -o /tmp/go.tgz "https://go.dev/dl/go${goversion}.linux-amd64.tar.gz"
  rm -rf /usr/local/go
  tar -C /usr/local -xzf /tmp/go.tgz
  rm -f /tmp/go.tgz
fi
ln -sf /usr/local/go/bin/go /usr/local/bin/go
cd /nfslab
CGO_ENABLED=0 go build \
  -tags 'remote containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper' \
  -o /usr/local/bin/nfslab ./cmd/nfslab
echo "$server" >/etc/nfslab-server
# The NFS server must answer before any scenario runs.
for _ in $(seq 1 30); do
  if timeout 2 bash -c "exec 3<>/dev/tcp/${server}/2049" 2>/dev/null; then
    echo "lab: NFS server ${server}:2049 answers"
    exit 0
  fi
  sleep 2
done
echo "lab: NFS server ${server}:2049 does not answer" >&2
exit 1

#!/usr/bin/env bash
# Provisions the NFS server machine: knfsd exporting /srv/nfs to the lab
# host only, NFSv4 with fsid=0 so the lab mounts SERVER:/ as in the seed.
# Usage: nfs-server.sh LAB_IP
set -euo pipefail
lab_ip=${1:?usage: nfs-server.sh LAB_IP}
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nfs-kernel-server
install -d -m 0777 /srv/nfs
line="/srv/nfs ${lab_ip}(rw,sync,no_subtree_check,no_root_squash,fsid=0)"
grep -qxF "$line" /etc/exports || echo "$line" >>/etc/exports
# Short grace and lease times: a restarted server must not stall the lab
# for 90 s.
install -d /etc/nfs.conf.d
printf '[nfsd]\ngrace-time=10\nlease-time=10\n' >/etc/nfs.conf.d/nfslab.conf
systemctl enable --now nfs-server
systemctl restart nfs-server
exportfs -ra
exportfs -v

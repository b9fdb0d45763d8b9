#!/usr/bin/env bash
# Provisions the NFS server machine: knfsd exporting /srv/nfs to the lab
# host only, NFSv4 with fsid=0 so the lab mounts SERVER:/ as in the seed;
# and, when the host uploaded nfslab (/tmp/nfslab), the nfslab daemon for
# server-side faults, its socket usable by the group nfslab (the vagrant
# user is in it, so `ssh -L` forwards it from the lab machine).
# Usage: nfs-server.sh LAB_IP
set -euo pipefail
lab_ip=${1:?usage: nfs-server.sh LAB_IP}
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
if ! dpkg-query -W -f='${Status}' nfs-kernel-server 2>/dev/null | grep -q 'install ok installed'; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nfs-kernel-server
fi
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
if [[ -x /tmp/nfslab ]]; then
  install -m 0755 /tmp/nfslab /usr/local/bin/nfslab
  getent group nfslab >/dev/null || groupadd --system nfslab
  usermod -a -G nfslab vagrant 2>/dev/null || true
  gid=$(getent group nfslab | cut -d: -f3)
  cat >/etc/systemd/system/nfslab-daemon.service <<UNIT
[Unit]
Description=nfslab fault daemon (unix socket only; reach it over ssh -L)
After=network-online.target

[Service]
ExecStart=/usr/local/bin/nfslab daemon --socket /run/nfslab/nfslab.sock --socket-group ${gid}
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now nfslab-daemon.service
  systemctl restart nfslab-daemon.service
fi

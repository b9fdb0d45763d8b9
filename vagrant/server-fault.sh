#!/usr/bin/env bash
# Runs an nfslab fault command on the NFS server machine from the lab
# machine: the server's nfslab daemon listens on its unix socket only; this
# forwards that socket over SSH (ssh -L LOCAL.sock:/run/nfslab/nfslab.sock)
# for the one command and removes the forward afterwards. No TCP listener.
#   server-fault.sh drop --dst 192.168.56.11 --local-port 2049 --dir both --for 40s   # its NFS traffic with the lab (docs/vm.md)
#   server-fault.sh status
#   server-fault.sh heal --all --faults-only
# Needs root's key /root/.ssh/nfslab-server authorized for vagrant@SERVER
# (scripts/vagrant-lab link does it) and vagrant in the socket's group.
set -euo pipefail
server=${NFSLAB_SERVER:-$(cat /etc/nfslab-server)}
user=${NFSLAB_SERVER_USER:-vagrant}
key=${NFSLAB_SERVER_KEY:-/root/.ssh/nfslab-server}
sock=/run/nfslab/server-$$.sock
install -d -m 0700 /run/nfslab
ssh -i "$key" -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ExitOnForwardFailure=yes \
  -o StreamLocalBindUnlink=yes -N -L "$sock:/run/nfslab/nfslab.sock" "$user@$server" &
fwd=$!
trap 'kill "$fwd" 2>/dev/null; wait "$fwd" 2>/dev/null; rm -f "$sock"' EXIT
for _ in $(seq 1 100); do
  [[ -S $sock ]] && break
  kill -0 "$fwd" 2>/dev/null || { echo "server-fault: ssh to $user@$server failed" >&2; exit 1; }
  sleep 0.1
done
# nfslab refuses a named socket nobody serves too; this says why sooner.
[[ -S $sock ]] || { echo "server-fault: no forwarded socket $sock" >&2; exit 1; }
nfslab --socket "$sock" "$@"

#!/usr/bin/env bash
# A single-node Slurm on this machine (as root), for the Slurm cases of tests/sweep/test_slurm.py.
#
#   bash scripts/start_slurm.sh         start munged, slurmctld, slurmd; check sinfo and srun
#   bash scripts/start_slurm.sh stop    stop the three daemons (by their pid files under /run)
#
# Idempotent: a cluster that already answers (a node idle, srun works) is left as it is.
# Needs the Debian packages slurm-wlm and munge. Writes /etc/slurm/slurm.conf only when it is
# missing or was written by this script (its first line says so); never overwrites another one.
# Every step has a timeout; on failure it prints one line (ending with the daemon's last log
# line) to stderr and exits non-zero.
set -uo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by apalu-book scripts/start_slurm.sh (single-node test cluster)"
LOGDIR=/var/log/slurm
WAIT_S=${SLURM_START_WAIT_S:-30}

fail() {
  local last=""
  [ -n "${2:-}" ] && [ -f "$2" ] && last=$(grep -v '^\s*$' "$2" | tail -1)
  echo "start_slurm: $1${last:+ (last log line: $last)}" >&2
  exit 1
}

PIDS="/run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid"

running() {  # the daemon whose pid file is $1 is alive
  local pid
  pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

stop_one() {  # TERM, wait up to 10 s, then KILL, the daemon of pid file $1
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null
  rm -f "$1"
}

cluster_ready() {  # a node idle (or mixed) and a job step runs on it
  local states
  states=$(timeout 10 sinfo -h -o '%t' 2>/dev/null) || return 1
  grep -qxE 'idle|mix' <<<"$states" || return 1
  [ -n "$(timeout 20 srun -N1 -n1 -t 1 hostname 2>/dev/null)" ]
}

if [ "${1:-}" = "stop" ]; then
  for f in $PIDS; do stop_one "$f"; done
  echo "start_slurm: stopped slurmd, slurmctld, munged"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || fail "must run as root"
for cmd in munged slurmctld slurmd sinfo srun scontrol; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || fail "$cmd not found (apt-get install slurm-wlm munge)"
done
export PATH="$PATH:/usr/sbin"

host=$(hostname -s) || fail "hostname -s failed"

# ---- slurm.conf: this machine's CPUs and memory, as slurmd itself measures them
node=$(timeout 20 slurmd -C 2>/dev/null | head -1) || fail "slurmd -C failed"
cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node")
mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
[ -n "$cpus" ] && [ -n "$mem" ] || fail "could not read CPUs/RealMemory from 'slurmd -C': $node"
mem=$(( mem * 95 / 100 ))  # slurmd drains a node that reports less memory than configured
mkdir -p /var/spool/slurmctld /var/spool/slurmd "$LOGDIR"
new=$(cat <<EOF
$MARK
ClusterName=apalu-test
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
# memory not consumable: with CR_Core_Memory a job without --mem takes the whole node
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)
ours=""
[ -f "$CONF" ] && head -1 "$CONF" | grep -qF "$MARK" && ours=1
# A cluster that answers is left alone, unless it runs on an older version of this script's conf.
if cluster_ready && { [ -z "$ours" ] || [ "$(cat "$CONF")" = "$new" ]; }; then
  echo "start_slurm: Slurm already up (sinfo: $(timeout 10 sinfo -h -o '%P %D %t' | head -1))"
  exit 0
fi

[ -f "$CONF" ] && [ -z "$ours" ] && fail "$CONF exists and was not written by this script; not overwriting it"

# ---- munge: a key, the runtime folder, the daemon; checked with a credential round trip
if [ ! -s /etc/munge/munge.key ]; then
  if [ -x /usr/sbin/mungekey ]; then
    timeout 30 /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1 || fail "mungekey failed"
  else
    timeout 30 create-munge-key -f >/dev/null 2>&1 || fail "create-munge-key failed"
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! timeout 10 bash -c 'munge -n | unmunge' >/dev/null 2>&1; then
  stop_one /run/munge/munged.pid
  timeout 20 runuser -u munge -- /usr/sbin/munged --force >/dev/null 2>&1 \
    || fail "munged did not start" /var/log/munge/munged.log
  ok=""
  for _ in $(seq 20); do
    timeout 10 bash -c 'munge -n | unmunge' >/dev/null 2>&1 && { ok=1; break; }
    sleep 0.25
  done
  [ -n "$ok" ] || fail "munge credential round trip (munge -n | unmunge) failed" /var/log/munge/munged.log
fi

changed=""
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new" ]; then
  printf '%s\n' "$new" >"$CONF" || fail "could not write $CONF"
  changed=1
fi

# ---- the daemons: (re)started when not running or when the configuration changed
if [ -n "$changed" ]; then
  stop_one /run/slurmd.pid
  stop_one /run/slurmctld.pid
fi
if ! running /run/slurmctld.pid; then
  timeout 30 slurmctld || fail "slurmctld did not start" "$LOGDIR/slurmctld.log"
fi
if ! running /run/slurmd.pid; then
  timeout 30 slurmd || fail "slurmd did not start" "$LOGDIR/slurmd.log"
fi

# ---- wait for the node, then a job step
deadline=$(( $(date +%s) + WAIT_S ))
state=""
while [ "$(date +%s)" -lt "$deadline" ]; do
  state=$(timeout 10 sinfo -h -n "$host" -o '%t' 2>/dev/null | head -1)
  case "$state" in
    idle|mix) break ;;
    down*|drain*|drng*) timeout 10 scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 ;;
  esac
  sleep 0.5
done
case "$state" in
  idle|mix) ;;
  *) running /run/slurmctld.pid || fail "slurmctld exited" "$LOGDIR/slurmctld.log"
     running /run/slurmd.pid || fail "slurmd exited" "$LOGDIR/slurmd.log"
     fail "node $host not idle after ${WAIT_S}s (sinfo state: ${state:-no answer})" "$LOGDIR/slurmd.log" ;;
esac
out=$(timeout 30 srun -N1 -n1 -t 1 hostname 2>&1) || fail "srun hostname failed: $(tail -1 <<<"$out")" "$LOGDIR/slurmd.log"
echo "start_slurm: Slurm up on $host ($cpus CPUs, ${mem} MB; partition debug; srun hostname -> $out)"

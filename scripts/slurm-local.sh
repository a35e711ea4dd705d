#!/usr/bin/env bash
# slurm-local.sh start|stop|status|env - kiln's own Slurm cluster on 127.0.0.1
# (one node, or KILN_SLURM_NODES nodes on this one host), for the Slurm
# executor's tests and benchmarks (docs/executors.md).
#
#   start   install Debian's slurm-wlm, slurmctld, slurmd, slurm-client and munge
#           when missing (root), write a config under $KILN_SLURM_DIR (default
#           /tmp/kiln-slurm), start munged, slurmctld and a slurmd per node, wait
#           until every node is idle; record exactly the pids it started. Idempotent.
#   stop    cancel what is still queued, stop the recorded pids (and only those).
#   status  exit 0 when the recorded daemons run and every node answers.
#   env     print `export SLURM_CONF=...` for the cluster.
#   start-for-tests  start, for ctest's fixture (see tests/CMakeLists.txt).
#
# Memory limits: task/cgroup with ConstrainRAMSpace on cgroup v1 or v2 when the
# cgroup memory controller is writable, so a job over its --mem ends
# OUT_OF_MEMORY; KILN_SLURM_CGROUP=off forces task/none (no enforcement).
# Ports: KILN_SLURM_CTLD_PORT (default 6817), KILN_SLURM_SLURMD_PORT (6818).
#
# Nodes: KILN_SLURM_NODES (default 1: the node `localhost`). N > 1 declares
# nodes n1..nN, all on 127.0.0.1 (Slurm's multiple-slurmd mode): node i's
# slurmd listens on KILN_SLURM_SLURMD_PORT + i - 1, each with the whole
# machine's CPUs and memory, spool, pid and log files named after the node
# (%n), and task/none (memory limits are the one-node cluster's to test;
# several slurmd on one cgroup hierarchy were not tried).
set -euo pipefail

D=${KILN_SLURM_DIR:-/tmp/kiln-slurm}
CTLD_PORT=${KILN_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${KILN_SLURM_SLURMD_PORT:-6818}
NODES=${KILN_SLURM_NODES:-1}
TIMEOUT=${KILN_SLURM_TIMEOUT:-60}
PKGS=(slurm-wlm slurmctld slurmd slurm-client munge)
[[ "$NODES" =~ ^[1-9]$ ]] || { echo "slurm-local: ERROR: KILN_SLURM_NODES must be 1 to 9, not '$NODES'" >&2; exit 2; }
if [ "$NODES" = 1 ]; then NODE_NAMES=(localhost); else NODE_NAMES=($(seq -f 'n%g' 1 "$NODES")); fi
NODE_LIST=$(IFS=,; echo "${NODE_NAMES[*]}")
CONF=$D/etc/slurm.conf
PIDS=$D/run/pids

log() { echo "slurm-local: $*"; }
die() { echo "slurm-local: ERROR: $*" >&2; exit 1; }
alive() { [ -r "/proc/$2/comm" ] && [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ]; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {  # wait_for SECONDS WHAT CMD...: poll CMD every 0.1 s, bounded
  local t=$1 what=$2; shift 2
  local end=$(($(date +%s) + t))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { echo "slurm-local: timed out after ${t}s waiting for $what" >&2; return 1; }
    sleep 0.1
  done
}
logs_tail() { for f in "$D"/log/*.log; do [ -f "$f" ] && { echo "----- $f"; tail -n 20 "$f"; }; done >&2; }

stop_recorded() {
  [ -s "$PIDS" ] || { rm -f "$PIDS"; return 0; }
  local rc=0 name pid
  for name in slurmd slurmctld munged; do  # reverse start order; a slurmd per node
    for pid in $(awk -v n="$name" '$1==n{print $2}' "$PIDS"); do
      alive "$name" "$pid" || continue
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do alive "$name" "$pid" || break; sleep 0.1; done
      alive "$name" "$pid" && { kill -KILL "$pid" 2>/dev/null || true; sleep 0.3; }
      if alive "$name" "$pid"; then log "could not stop $name ($pid)"; rc=1; else log "stopped $name ($pid)"; fi
    done
  done
  [ $rc = 0 ] && rm -f "$PIDS"
  return $rc
}

healthy() {
  [ -s "$PIDS" ] || return 1
  local name pid
  while read -r name pid; do alive "$name" "$pid" || return 1; done < "$PIDS"
  SLURM_CONF=$CONF timeout 10 scontrol ping 2>/dev/null | grep -q UP || return 1
  [ "$(SLURM_CONF=$CONF timeout 10 sinfo -h -N -n "$NODE_LIST" -o %T 2>/dev/null | grep -Ec '^(idle|mixed|allocated)$')" = "$NODES" ]
}

# Whether every node is idle.
all_idle() { [ "$(sinfo -h -N -n "$NODE_LIST" -o %T | grep -cx idle)" = "$NODES" ]; }

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null &&
    command -v munged >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "Slurm is not installed; as root run: apt-get install ${PKGS[*]}"
  local policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep postinst from starting the system's own daemons
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy=1
  fi
  local ok=1
  inst() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${PKGS[@]}"; }
  inst > "$D.apt.log" 2>&1 || { apt-get update -qq -o DPkg::Lock::Timeout=300 >> "$D.apt.log" 2>&1 || true
                               inst >> "$D.apt.log" 2>&1 || ok=0; }
  [ $policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $ok = 1 ] || { tail -n 30 "$D.apt.log" >&2; die "apt-get install ${PKGS[*]} failed (log: $D.apt.log)"; }
  log "installed ${PKGS[*]}"
}

# Whether slurmd may create memory cgroups here (v1: the memory hierarchy; v2: the root's subtree_control).
memory_cgroups() {
  [ "${KILN_SLURM_CGROUP:-on}" != off ] && [ "$NODES" = 1 ] || return 1
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    grep -qw memory /sys/fs/cgroup/cgroup.controllers && [ -w /sys/fs/cgroup/cgroup.subtree_control ]
  else
    [ -w /sys/fs/cgroup/memory ] && [ -d /sys/fs/cgroup/freezer ]
  fi
}

# The NodeName lines: `localhost` on the config's SlurmdPort, or n1..nN on 127.0.0.1, each on its own port.
node_lines() {
  if [ "$NODES" = 1 ]; then echo "NodeName=localhost NodeAddr=127.0.0.1 $1 State=UNKNOWN"; return; fi
  local i
  for i in $(seq 1 "$NODES"); do
    echo "NodeName=n$i NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((SLURMD_PORT + i - 1)) $1 State=UNKNOWN"
  done
}

write_config() {
  local hw task=task/none proctrack=proctrack/linuxproc suffix=""
  [ "$NODES" = 1 ] || suffix=-%n  # spool-n1, slurmd-n1.pid, slurmd-n1.log
  hw=$(slurmd -C 2>/dev/null | head -n1) || true
  [[ "$hw" == NodeName=* ]] || die "slurmd -C printed no node line: '$hw'"
  hw=${hw#NodeName=* }  # keep CPUs=.. RealMemory=..
  # Up to 4 jobs share a core (tests run loops as parallel jobs on 2 cores), and a
  # job without --mem gets its share of the node's memory, not all of it.
  local cpus mem
  cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<< "$hw"); mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<< "$hw")
  local share=$((mem / (cpus * 4)))
  if memory_cgroups; then
    task=task/cgroup proctrack=proctrack/cgroup
    cat > "$D/etc/cgroup.conf" <<EOF
CgroupPlugin=autodetect
CgroupMountpoint=/sys/fs/cgroup
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
AllowedSwapSpace=0
ConstrainCores=no
ConstrainDevices=no
EOF
  fi
  cat > "$CONF" <<EOF
ClusterName=kiln
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
$([ "$NODES" = 1 ] && echo "SlurmdPort=$SLURMD_PORT")
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool$suffix
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd$suffix.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd$suffix.log
ProctrackType=$proctrack
TaskPlugin=$task
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# sbatch never starts a job itself: slurmctld's scheduler does, on its 1 s tick;
# without batch_sched_delay=0 it waits up to 3 s more after other jobs.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
MailProg=/bin/true
DefMemPerCPU=$share
$(node_lines "$hw")
PartitionName=debug Nodes=$NODE_LIST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  echo "export SLURM_CONF=$CONF" > "$D/env.sh"
}

start() {
  mkdir -p "$(dirname "$D")"
  install_packages
  if healthy; then log "already running: $(awk '{printf "%s=%s ", $1, $2}' "$PIDS")"; return 0; fi
  [ -s "$PIDS" ] && { log "stopping a stale instance"; stop_recorded || true; }
  [ "$(id -u)" = 0 ] || die "slurmd and slurmctld run as root here: run start as root"
  for p in "$CTLD_PORT" $(seq "$SLURMD_PORT" $((SLURMD_PORT + NODES - 1))); do
    port_busy "$p" && die "port $p on 127.0.0.1 is in use (another Slurm? set KILN_SLURM_CTLD_PORT/KILN_SLURM_SLURMD_PORT)"
  done
  rm -rf "$D"; mkdir -p "$D"/{etc,state,spool,log,run,munge}
  local node
  [ "$NODES" = 1 ] || for node in "${NODE_NAMES[@]}"; do mkdir -p "$D/spool-$node"; done
  chmod 755 "$D" "$D/munge"
  : > "$PIDS"
  fail() { echo "slurm-local: ERROR: $*" >&2; logs_tail; stop_recorded || true; exit 1; }

  dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 status=none; chmod 600 "$D/munge/munge.key"
  munged --socket="$D/munge/munge.socket" --key-file="$D/munge/munge.key" --log-file="$D/log/munged.log" \
    --pid-file="$D/run/munged.pid" --seed-file="$D/munge/munged.seed" 2>> "$D/log/munged.log" || fail "munged did not start"
  wait_for 10 "munged's pid file" test -s "$D/run/munged.pid" || fail "munged wrote no pid file"
  echo "munged $(cat "$D/run/munged.pid")" >> "$PIDS"
  wait_for 10 "a munge round trip" sh -c "munge -S '$D/munge/munge.socket' -n | unmunge -S '$D/munge/munge.socket'" ||
    fail "munge credentials do not round-trip"

  write_config
  (cd "$D" && slurmctld -f "$CONF") || fail "slurmctld did not start"
  wait_for "$TIMEOUT" "slurmctld's pid file" test -s "$D/run/slurmctld.pid" || fail "slurmctld wrote no pid file"
  echo "slurmctld $(cat "$D/run/slurmctld.pid")" >> "$PIDS"
  local pidfile
  for node in "${NODE_NAMES[@]}"; do
    pidfile=$D/run/slurmd.pid
    [ "$NODES" = 1 ] || pidfile=$D/run/slurmd-$node.pid
    (cd "$D" && slurmd -f "$CONF" -N "$node") || fail "slurmd of node $node did not start"
    wait_for "$TIMEOUT" "slurmd's pid file ($node)" test -s "$pidfile" || fail "slurmd of node $node wrote no pid file"
    echo "slurmd $(cat "$pidfile")" >> "$PIDS"
  done

  export SLURM_CONF=$CONF
  wait_for "$TIMEOUT" "scontrol ping" sh -c 'scontrol ping | grep -q UP' || fail "slurmctld does not answer"
  wait_for "$TIMEOUT" "nodes $NODE_LIST idle" all_idle ||
    { sinfo -N -l >&2 || true; fail "not every node became idle ($NODE_LIST)"; }
  log "ready ($(grep -o 'TaskPlugin=.*' "$CONF")): $(awk '{printf "%s=%s ", $1, $2}' "$PIDS")"
  log "use: source $D/env.sh"
}

stop() {
  if [ -s "$PIDS" ] && alive slurmctld "$(awk '$1=="slurmctld"{print $2}' "$PIDS")"; then
    export SLURM_CONF=$CONF
    local jobs
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ') || true
    if [ -n "${jobs// /}" ]; then
      log "cancelling jobs: $jobs"
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs 2>/dev/null || true
      for _ in $(seq 1 100); do [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
    fi
  fi
  stop_recorded
}

case "${1:-}" in
  start) start ;;
  # ctest's fixture: a machine that cannot run Slurm (not root) lets the Slurm
  # tests skip, except in CI (KILN_TEST_NO_SKIPS=1), where that is a failure.
  start-for-tests)
    if [ "$(id -u)" != 0 ] && [ "${KILN_TEST_NO_SKIPS:-0}" != 1 ]; then
      log "not root: no cluster, the Slurm tests skip"; exit 0
    fi
    start ;;
  stop) stop ;;
  status) healthy && log "running: $(awk '{printf "%s=%s ", $1, $2}' "$PIDS")" || { log "not running"; exit 1; } ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the test suite (tests/test_slurm_cluster.py).
#
#   tests/slurm/cluster.sh install   # apt-get install slurmctld slurmd slurm-client munge (if missing)
#   tests/slurm/cluster.sh start     # write slurm.conf, start munged, slurmctld, slurmd; wait until idle
#   tests/slurm/cluster.sh status    # exit 0 when the node is usable (idle/mixed/allocated)
#   tests/slurm/cluster.sh stop      # scontrol shutdown, stop munged (waits for a running test session;
#                                    # `stop --force` does not)
#
# Needs root and Debian's slurm 22.05 packages. No systemd, no cgroups, no accounting storage: use
# the Snakemake SLURM plugin with `slurm-status-command: squeue` (see tests/slurm/profile/config.yaml),
# because sacct without slurmdbd makes the plugin hang. Every command is wrapped in `timeout -k`.
# Idempotent: `start` on a running cluster and `stop` on a stopped one do nothing.
set -euo pipefail

CONF_DIR=${CTPAPER_SLURM_CONF_DIR:-/etc/slurm}
CONF=$CONF_DIR/slurm.conf
PARTITION=${CTPAPER_SLURM_PARTITION:-local}
LOG_DIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
T="timeout -k 5"   # prefix: timeout -k 5 <seconds> cmd
# A test session holds this lock while it uses the cluster (tests/test_slurm_cluster.py); `stop`
# waits for it unless the caller is that session (CTPAPER_SLURM_LOCK_HELD=1) or `stop --force`.
LOCK=${CTPAPER_SLURM_LOCK:-/run/lock/ctpaper-slurm-tests.lock}

log() { echo "cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

have_all() {
    command -v sbatch >/dev/null && command -v squeue >/dev/null && command -v sinfo >/dev/null \
        && [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/sbin/munged ]
}

cmd_install() {
    have_all && { log "slurm and munge already installed"; return 0; }
    need_root
    command -v apt-get >/dev/null || die "apt-get not available"
    export DEBIAN_FRONTEND=noninteractive
    local apt="$T 600 apt-get -q -y -o DPkg::Lock::Timeout=300"
    if ! $apt install --no-install-recommends slurmctld slurmd slurm-client munge >/tmp/ctpaper-slurm-apt.log 2>&1; then
        log "apt-get install failed; running apt-get update once and retrying"
        $T 300 apt-get -q -o DPkg::Lock::Timeout=300 update >>/tmp/ctpaper-slurm-apt.log 2>&1 || true
        $apt install --no-install-recommends slurmctld slurmd slurm-client munge >>/tmp/ctpaper-slurm-apt.log 2>&1 \
            || die "apt-get install slurmctld slurmd slurm-client munge failed (see /tmp/ctpaper-slurm-apt.log)"
    fi
    have_all || die "packages installed but binaries missing"
    log "installed: slurm $(dpkg-query -W -f="${Version}" slurmctld 2>/dev/null)"
}

write_conf() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc --all)  # not nproc: it honours OMP_NUM_THREADS=1, which the test sessions set
    mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 - 512 ))
    mkdir -p "$CONF_DIR"
    cat >"$CONF.tmp" <<EOF
# Written by ctpaper tests/slurm/cluster.sh: a one-node test cluster (no cgroups, no accounting).
ClusterName=ctpaper
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# Finished jobs stay visible to squeue for 300 s (>= 3x the plugin's first status check).
MinJobAge=300
InactiveLimit=0
KillWait=10
Waittime=0
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

pid_alive() { local pid; pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

node_state() { $T 10 sinfo -h -o %T 2>/dev/null | head -n1 || true; }

usable() {
    case "$(node_state)" in
        idle*|mixed*|allocated*|completing*) return 0 ;;
        *) return 1 ;;
    esac
}

cmd_status() {
    if pid_alive "$CTLD_PID" && pid_alive "$SLURMD_PID" && usable; then
        $T 10 sinfo -h -o "%P %T %c %m %N"
        return 0
    fi
    log "not running (state: $(node_state))"
    return 1
}

cmd_start() {
    need_root
    have_all || die "slurm/munge not installed (run: $0 install)"
    if pid_alive "$CTLD_PID" && pid_alive "$SLURMD_PID" && usable; then
        log "already running"; return 0
    fi
    write_conf
    mkdir -p /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR" /run/munge /etc/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /etc/munge /var/lib/munge /var/log/munge
    chmod 0755 /run/munge
    chmod 0700 /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        $T 30 runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key \
            || $T 30 mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0600 /etc/munge/munge.key
    fi
    if ! pid_alive "$MUNGE_PID"; then
        rm -f "$MUNGE_PID" /run/munge/munge.socket.2*
        $T 30 runuser -u munge -- /usr/sbin/munged
    fi
    local i
    for i in $(seq 50); do
        $T 5 munge -n </dev/null 2>/dev/null | $T 5 unmunge >/dev/null 2>&1 && break
        sleep 0.2
    done
    pid_alive "$CTLD_PID" || $T 30 /usr/sbin/slurmctld
    for i in $(seq 50); do $T 5 scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
    pid_alive "$SLURMD_PID" || $T 30 /usr/sbin/slurmd
    for i in $(seq 120); do
        usable && break
        case "$(node_state)" in
            drain*|down*|fail*) $T 10 scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    usable || die "node did not become idle: $(node_state); see $LOG_DIR/slurmctld.log and slurmd.log"
    log "running: $($T 10 sinfo -h -o '%P %T cpus=%c mem=%m node=%N')"
}

wait_gone() {  # wait until the process of pid file $1 has exited
    local pid i
    [ -f "$1" ] || return 0
    pid=$(cat "$1" 2>/dev/null) || return 0
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    log "pid $pid ($1) still alive, sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
}

cmd_stop() {
    need_root
    if [ "${CTPAPER_SLURM_LOCK_HELD:-0}" != 1 ] && [ "${1:-}" != --force ] && [ -e "$LOCK" ]; then
        $T 300 flock -w 290 "$LOCK" true \
            || die "a test session still uses the cluster ($LOCK); use: $0 stop --force"
    fi
    if pid_alive "$CTLD_PID" || pid_alive "$SLURMD_PID"; then
        $T 30 scontrol shutdown >/dev/null 2>&1 || true
        wait_gone "$SLURMD_PID"
        wait_gone "$CTLD_PID"
    fi
    # slurmd does not always exit on `scontrol shutdown` when slurmctld is already gone
    pid_alive "$SLURMD_PID" && { kill "$(cat "$SLURMD_PID" 2>/dev/null)" 2>/dev/null || true; wait_gone "$SLURMD_PID"; }
    pid_alive "$CTLD_PID" && { kill "$(cat "$CTLD_PID" 2>/dev/null)" 2>/dev/null || true; wait_gone "$CTLD_PID"; }
    if pid_alive "$MUNGE_PID"; then
        kill "$(cat "$MUNGE_PID" 2>/dev/null)" 2>/dev/null || true
        wait_gone "$MUNGE_PID"
    fi
    rm -f "$CTLD_PID" "$SLURMD_PID"
    # Without a controller, every client call (and so every `snakemake` start: the SLURM plugin
    # runs `scontrol show config`) waits ~10 s for slurmctld. Without slurm.conf it fails at once.
    if [ -f "$CONF" ] && head -n1 "$CONF" | grep -q "ctpaper tests/slurm/cluster.sh"; then
        rm -f "$CONF"
    fi
    log "stopped"
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop "${2:-}" ;;
    status) cmd_status ;;
    *) echo "usage: $0 {install|start|stop|status}" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# One-node SLURM cluster on localhost, for trying sweeps on a workstation and for the tests.
#
#   slurm/local_cluster.sh start    install slurm-wlm + munge if missing, write the config, start
#                                   munged, slurmctld and slurmd, wait until the node accepts jobs
#   slurm/local_cluster.sh stop     stop the three daemons
#   slurm/local_cluster.sh status   print the daemons and the node state; exit 0 only if jobs can run
#
# Every command is idempotent. Needs root (daemons, /etc/slurm). Debian/Ubuntu only (apt-get).
# Environment knobs (read by `start`):
#   LOCAL_CLUSTER_CPUS       CPU slots the node advertises (default: nproc). More slots than cores
#                            lets more array tasks run at once on a small machine.
#   LOCAL_CLUSTER_GPUS       GPUs exposed as gres gpu:N from /dev/nvidia0..N-1 (default 0).
#   LOCAL_CLUSTER_PARTITION  name of the single partition (default: local).
# Configuration facts (Debian slurm-wlm 22.05 in a container without systemd or cgroup delegation):
# proctrack/linuxproc and task/none need no cgroups, there is no accounting storage (so sacct fails,
# which submitit only warns about), and the daemons run as root.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
MARKER="# written by torchrl_reg slurm/local_cluster.sh"
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
NODE=$(hostname -s)

die() { echo "local_cluster.sh: $*" >&2; exit 1; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it starts munged, slurmctld and slurmd and writes $CONF)"
}

pid_alive() {  # pid_alive PIDFILE
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "slurm-wlm and munge are missing and apt-get is not available"
    echo "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q slurm-wlm munge
}

write_config() {
    # nproc counts the cores this process may use, but also obeys OMP_NUM_THREADS / OMP_THREAD_LIMIT:
    # a caller that runs its own work with OMP_NUM_THREADS=1 must not shrink the node to one slot.
    local cpus=${LOCAL_CLUSTER_CPUS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}
    local gpus=${LOCAL_CLUSTER_GPUS:-0}
    local partition=${LOCAL_CLUSTER_PARTITION:-local}
    [[ $cpus =~ ^[1-9][0-9]*$ ]] || die "LOCAL_CLUSTER_CPUS=$cpus: expected a positive integer"
    [[ $gpus =~ ^[0-9]+$ ]] || die "LOCAL_CLUSTER_GPUS=$gpus: expected an integer >= 0"
    [[ $partition =~ ^[A-Za-z0-9_-]+$ ]] || die "LOCAL_CLUSTER_PARTITION=$partition: expected [A-Za-z0-9_-]+"
    if [[ -e $CONF ]] && ! head -n 1 "$CONF" | grep -qF "$MARKER"; then
        die "$CONF exists and was not written by this script: refusing to replace a real cluster's config"
    fi
    # Memory in MB as slurmd measures it, so a job's --mem is checked against what the node has.
    local mem_mb
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024) - 512}' /proc/meminfo)
    local gres_node="" gres_types=""
    if (( gpus > 0 )); then
        gres_types="GresTypes=gpu"
        gres_node="Gres=gpu:$gpus"
    fi
    mkdir -p /etc/slurm "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR"
    local tmp
    tmp=$(mktemp /etc/slurm/slurm.conf.XXXXXX)
    cat >"$tmp" <<EOF
$MARKER
ClusterName=localcluster
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# A requeued job waits cred_expire seconds (default 120) before it may start again, and time-based
# eligibility is only checked every sched_interval (default 60 s): short on a one-node local cluster.
AuthInfo=cred_expire=15
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# The node may advertise more CPU slots than it has cores (LOCAL_CLUSTER_CPUS).
SlurmdParameters=config_overrides
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb $gres_node State=UNKNOWN
PartitionName=$partition Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$tmp" "$CONF"
    chmod 644 "$CONF"
    if (( gpus > 0 )); then
        printf '%s\nName=gpu File=/dev/nvidia[0-%d]\n' "$MARKER" $((gpus - 1)) >"$GRES_CONF"
    elif [[ -e $GRES_CONF ]] && head -n 1 "$GRES_CONF" | grep -qF "$MARKER"; then
        rm -f "$GRES_CONF"
    fi
}

start_munge() {
    if pid_alive "$MUNGE_PID"; then
        return
    fi
    [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    # munged runs as its own user, as Debian's service does.
    runuser -u munge -- /usr/sbin/munged 9>&-
    munge -n | unmunge >/dev/null || die "munged started but a credential round trip failed"
}

node_state() {
    sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1
}

wait_for_node() {
    local state=""
    for _ in $(seq 1 120); do
        state=$(node_state)
        case $state in
            idle*|mixed*|allocated*|completing*) return 0 ;;
            down*|drain*|fail*)
                # A node left down by an unclean stop comes back once its slurmd has registered.
                scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    die "node $NODE did not become usable within 60 s (state: '${state:-none}'); see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log"
}

cmd_start() {
    need_root
    # Two callers starting at once (e.g. test workers) must not both write the config and the daemons. The daemons
    # are started with fd 9 closed (9>&-): a daemon that inherited it would hold the lock for its whole life, and the
    # next start (e.g. after the node went down) would wait on it until the cluster stopped.
    exec 9>/run/torchrl_reg_local_cluster.lock
    flock 9
    install_packages
    local old_conf=""
    [[ -e $CONF ]] && old_conf=$(cat "$CONF")
    write_config
    if [[ $(cat "$CONF") != "$old_conf" ]] && { pid_alive "$CTLD_PID" || pid_alive "$SLURMD_PID"; }; then
        echo "configuration changed: restarting slurmctld and slurmd"
        stop_slurm
    fi
    start_munge
    pid_alive "$CTLD_PID" || /usr/sbin/slurmctld 9>&-
    pid_alive "$SLURMD_PID" || /usr/sbin/slurmd 9>&-
    wait_for_node
    echo "local SLURM cluster up: node $NODE, partition ${LOCAL_CLUSTER_PARTITION:-local}"
}

stop_slurm() {
    local pidfile pid
    for pidfile in "$SLURMD_PID" "$CTLD_PID"; do
        if pid_alive "$pidfile"; then
            pid=$(cat "$pidfile")
            kill -TERM "$pid"
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && die "daemon $pid ($pidfile) did not stop within 10 s"
        fi
        rm -f "$pidfile"
    done
}

cmd_stop() {
    need_root
    stop_slurm
    if pid_alive "$MUNGE_PID"; then
        local pid
        pid=$(cat "$MUNGE_PID")
        kill -TERM "$pid"
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    echo "local SLURM cluster stopped"
}

cmd_status() {
    local ok=0 name pidfile
    for name in munged slurmctld slurmd; do
        case $name in
            munged) pidfile=$MUNGE_PID ;;
            slurmctld) pidfile=$CTLD_PID ;;
            slurmd) pidfile=$SLURMD_PID ;;
        esac
        if pid_alive "$pidfile"; then
            echo "$name: running (pid $(cat "$pidfile"))"
        else
            echo "$name: stopped"
            ok=3
        fi
    done
    if (( ok == 0 )); then
        local state
        state=$(node_state)
        echo "node $NODE: ${state:-unknown}"
        case $state in
            idle*|mixed*|allocated*|completing*) ;;
            *) ok=3 ;;
        esac
        sinfo
    fi
    return $ok
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A real one-node SLURM on this machine, for testing the slurm profile (Debian/Ubuntu, as root).
#
#   tools/local-slurm.sh start [GPUS]   install (if needed) and start munge, slurmctld, slurmd;
#                                       GPUS fake GPUs (default 4) are declared as GRES so that
#                                       rules asking for GPUs schedule
#   tools/local-slurm.sh stop           cancel the cluster's jobs, stop exactly the daemons `start`
#                                       started, restore the config files it replaced
#   tools/local-slurm.sh controller stop|start
#                                       stop or start slurmctld alone (jobs keep running; clients
#                                       cannot reach SLURM meanwhile): for tests of that case
#   tools/local-slurm.sh status         sinfo
#
# Everything of the cluster (PIDs of what was started, config backups, job state, spool,
# logs) lives in $LOCAL_SLURM_STATE (default /tmp/codit-local-slurm), removed by `stop`. Without an accounting database `sacct` fails, so the
# matching profile (profiles/slurm-local) checks job status with squeue.
set -euo pipefail

STATE=${LOCAL_SLURM_STATE:-/tmp/codit-local-slurm}
CONF_DIR=/etc/slurm
DAEMONS=(slurmd slurmctld munged) # stop order

log() { echo "local-slurm: $*" >&2; }

install_packages() {
	if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null &&
		command -v sbatch >/dev/null; then
		return
	fi
	log "installing munge and slurm from Debian packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null
}

backup_config() { # keep a file that was there before, so `stop` can put it back
	local file=$1
	if [[ -e $file && ! -e $STATE/backup/$(basename "$file") ]]; then
		cp -p "$file" "$STATE/backup/"
	fi
}

write_config() {
	local gpus=$1 host cpus mem gres_line=""
	host=$(hostname -s)
	cpus=$(nproc)
	mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)
	mkdir -p "$CONF_DIR" "$STATE/backup"
	backup_config "$CONF_DIR/slurm.conf"
	backup_config "$CONF_DIR/gres.conf"
	if ((gpus > 0)); then
		gres_line="Gres=gpu:$gpus"
		# One distinct existing character device per fake GPU (a bare count makes the node INVAL).
		local devices=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/ptmx)
		if ((gpus > ${#devices[@]})); then
			log "at most ${#devices[@]} fake GPUs"
			exit 1
		fi
		local files
		files=$(
			IFS=,
			echo "${devices[*]:0:gpus}"
		)
		echo "NodeName=$host Name=gpu File=$files" >"$CONF_DIR/gres.conf"
	fi
	cat >"$CONF_DIR/slurm.conf" <<CONF
ClusterName=codit-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits for its job credential to expire before it starts again (120 s by
# default): short, so that tests of lost nodes do not wait.
AuthInfo=cred_expire=10
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/pgid
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# squeue must still list finished jobs when Snakemake asks (>= 3 x its first status delay),
# and when the tests read the jobs' GPUs and CPUs after a run of ten minutes and more.
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# SIGTERM to SIGKILL at a job's cancellation or time limit (30 s by default): short, so that tests
# that cancel jobs and the teardown do not wait.
KillWait=5
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem $gres_line State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

running() { # running NAME: a live process of that name (a zombie left for init to reap is not)
	ps -C "$1" -o stat= 2>/dev/null | grep -qv '^Z'
}

pid_alive() { # pid_alive PID: the process exists and is not a zombie
	local stat
	stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}

end_pid() { # end_pid PID: SIGTERM, then SIGKILL after 30 s; returns once it is gone
	local pid=$1
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 300); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
	log "pid $pid ignored SIGTERM for 30 s; killing it"
	kill -9 "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
}

job_processes() { # PIDs of processes that run in a job of this cluster (by their environment)
	local dir
	for dir in /proc/[0-9]*; do
		grep -qsza "^SLURM_CLUSTER_NAME=codit-local$" "$dir/environ" && echo "${dir#/proc/}"
	done
	return 0
}

record_pid() { # record_pid NAME PIDFILE: remember the daemon this script just started
	local name=$1 pidfile=$2 pid
	for _ in $(seq 100); do
		# The file must name a live process of that name: a daemon that exited may have left
		# its pid there (slurmctld runs as slurm and cannot remove its file from /run).
		pid=$(cat "$pidfile" 2>/dev/null) || pid=""
		if [[ -n $pid ]] && pid_alive "$pid" && [[ $(ps -o comm= -p "$pid") == "$name" ]]; then
			echo "$pid $pidfile" >"$STATE/$name.pid"
			return
		fi
		sleep 0.1
	done
	log "$name did not start (no live $name in $pidfile)"
	exit 1
}

start() {
	local gpus=${1:-4}
	[[ $(id -u) == 0 ]] || {
		log "must run as root"
		exit 1
	}
	if running slurmctld || running slurmd; then
		log "a slurmctld or slurmd is already running; not starting a second cluster"
		exit 1
	fi
	install_packages
	mkdir -p "$STATE"
	write_config "$gpus"
	# Job state, spool and logs of this cluster only: a new cluster starts empty. A cluster
	# killed without `stop` leaves its job state behind, and slurmctld would recover its
	# jobs (and their job ids) into this one; its config backups are kept for `stop`.
	if [[ -d $STATE/slurmctld || -d $STATE/slurmd ]]; then
		log "clearing the job state of a cluster that was not stopped ($STATE)"
	fi
	rm -rf "$STATE/slurmctld" "$STATE/slurmd" "$STATE/log" "$STATE/slurmctld.pid" "$STATE/slurmd.pid"
	install -d -o slurm -g slurm "$STATE/slurmctld" "$STATE/log"
	install -d "$STATE/slurmd"
	# No daemon runs (checked above): pid files left in /run are stale; record_pid must not read
	# them before the new daemons write theirs.
	rm -f /run/slurmctld.pid /run/slurmd.pid
	if ! running munged; then
		rm -f /run/munge/munged.pid
		install -d -o munge -g munge -m 0755 /run/munge
		runuser -u munge -- /usr/sbin/munged
		record_pid munged /run/munge/munged.pid
	fi
	/usr/sbin/slurmctld
	record_pid slurmctld /run/slurmctld.pid
	/usr/sbin/slurmd
	record_pid slurmd /run/slurmd.pid
	for _ in $(seq 100); do
		if [[ $(sinfo -h -o %T 2>/dev/null) == idle ]]; then
			log "up: $(hostname -s), $(nproc) CPUs, $gpus fake GPU(s); stop with: $0 stop"
			return
		fi
		sleep 0.2
	done
	log "the node did not become idle; sinfo says: $(sinfo -h -o '%T %E' 2>&1)"
	stop
	exit 1
}

stop() {
	[[ -d $STATE ]] || {
		log "nothing to stop (no $STATE)"
		return
	}
	local name pid pidfile leftovers jobs
	# The jobs first: stopping slurmd leaves its job steps running (by design, for restarts).
	if jobs=$(squeue -h -o %i 2>/dev/null) && [[ -n $jobs ]]; then
		# shellcheck disable=SC2086 # one job id per word
		scancel $jobs 2>/dev/null || true
		for _ in $(seq 600); do
			running slurmstepd || break
			sleep 0.1
		done
	fi
	for name in "${DAEMONS[@]}"; do
		[[ -f $STATE/$name.pid ]] || continue
		read -r pid pidfile <"$STATE/$name.pid"
		# Only the process this script started, and only if it is still that daemon.
		if [[ $(ps -o comm= -p "$pid" 2>/dev/null) == "$name" ]]; then
			end_pid "$pid"
		fi
		rm -f "$pidfile" "$STATE/$name.pid"
	done
	# What a job left behind outlives its job step: end it, and say so (tests assert none).
	leftovers=$(job_processes)
	if [[ -n $leftovers ]]; then
		for pid in $leftovers; do
			log "ending a process a job of this cluster left behind: $pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-200)"
			kill -9 "$pid" 2>/dev/null || true
		done
	fi
	rm -f "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"
	if [[ -d $STATE/backup ]]; then
		cp -p "$STATE"/backup/* "$CONF_DIR/" 2>/dev/null || true
	fi
	rm -rf "$STATE"
	log "stopped"
}

controller() { # controller stop|start: slurmctld alone, its job state kept
	local pid pidfile
	case $1 in
	stop)
		read -r pid pidfile <"$STATE/slurmctld.pid"
		end_pid "$pid"
		;;
	start)
		rm -f /run/slurmctld.pid # the stopped one's, stale
		/usr/sbin/slurmctld
		record_pid slurmctld /run/slurmctld.pid
		for _ in $(seq 100); do
			squeue -h >/dev/null 2>&1 && return
			sleep 0.2
		done
		log "slurmctld did not answer"
		exit 1
		;;
	*)
		echo "usage: $0 controller stop|start" >&2
		exit 2
		;;
	esac
}

case ${1:-} in
start) start "${2:-4}" ;;
stop) stop ;;
controller) controller "${2:-}" ;;
status) sinfo ;;
*)
	echo "usage: $0 start [GPUS] | stop | controller stop|start | status" >&2
	exit 2
	;;
esac

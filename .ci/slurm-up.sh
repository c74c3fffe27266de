#!/usr/bin/env bash
# Start a single-node Slurm on localhost: Debian's slurm-wlm and munge, configured from
# .ci/slurm.conf, with munged, slurmctld and slurmd started directly (no systemd needed), and
# wait until the node takes jobs. For the tests (.ci/run calls it) and for a job queue on one
# workstation. Idempotent: what is installed, configured or running is left as it is, so a
# second call only checks. Runs as root (re-executes itself with sudo otherwise).
#
#   bash .ci/slurm-up.sh          then: sinfo; sbatch ...; python sweep.py SWEEP --slurm
set -euo pipefail
[ "$(id -u)" -eq 0 ] || exec sudo "$0" "$@"

here="$(cd "$(dirname "$0")" && pwd)"
conf=/etc/slurm/slurm.conf
marker="# Written by .ci/slurm-up.sh from .ci/slurm.conf; edit that file and run the script again."

say() { echo "slurm-up: $*"; }
die() { echo "slurm-up: error: $*" >&2; exit 1; }

# A daemon is running when its pid file names a live process of its name (not a zombie:
# without an init system, a killed daemon may stay one until something reaps it).
running() {  # running NAME PIDFILE
  local pid stat
  pid="$(cat "$2" 2>/dev/null)" || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ "$stat" == "$pid ($1) "[!Z]* ]]  # "PID (COMM) STATE ..."
}

# 1. The packages (apt-get update only when something is missing).
packages=(slurmctld slurmd slurm-client munge)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -qx 'install ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. The configuration: the repository's, with this machine's CPUs and memory. An existing
#    slurm.conf that this script did not write is a real installation: leave it alone.
if [ -f "$conf" ] && [ "$(head -n 1 "$conf")" != "$marker" ]; then
  die "$conf exists and was not written by this script; not touching an existing Slurm installation"
fi
node="$(slurmd -C | head -n 1)"
cpus="$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")"
memory="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")"
[ -n "$cpus" ] && [ -n "$memory" ] || die "cannot read this machine's CPUs and memory from 'slurmd -C': $node"
wanted="$(printf '%s\n' "$marker"; sed -e "s/@CPUS@/$cpus/" -e "s/@MEMORY_MB@/$memory/" "$here/slurm.conf")"
changed=no
if [ "$(cat "$conf" 2>/dev/null)" != "$wanted" ]; then
  mkdir -p /etc/slurm
  printf '%s\n' "$wanted" >"$conf"
  changed=yes
  say "wrote $conf (localhost: $cpus CPUs, $memory MB)"
fi
install -d -o slurm -g slurm /var/lib/slurm/slurmctld /var/log/slurm /run/slurm
install -d /var/lib/slurm/slurmd

# 3. munge: a key, then the daemon, as its own user.
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 755 /run/munge
if ! running munged /run/munge/munged.pid; then
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged
fi
munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"

# 4. The controller and the node daemon; restarted when the configuration changed.
for daemon in slurmctld slurmd; do
  if [ "$changed" = yes ] && running "$daemon" "/run/slurm/$daemon.pid"; then
    say "stopping $daemon (new configuration)"
    kill "$(cat "/run/slurm/$daemon.pid")"
    for _ in $(seq 50); do running "$daemon" "/run/slurm/$daemon.pid" || break; sleep 0.1; done
  fi
done
if ! running slurmctld /run/slurm/slurmctld.pid; then
  say "starting slurmctld"
  /usr/sbin/slurmctld
fi
if ! running slurmd /run/slurm/slurmd.pid; then
  say "starting slurmd"
  /usr/sbin/slurmd -N localhost
fi

# 5. Wait until the node takes jobs (idle, or busy with jobs already).
for _ in $(seq 120); do
  state="$(sinfo -h -N -n localhost -o %t 2>/dev/null || true)"
  case "$state" in
    idle|mix|alloc) say "node localhost is $state: Slurm is up (partition local)"; exit 0 ;;
    down*|drain*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
  esac
  sleep 0.5
done
tail -n 5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
die "the node did not come up within 60 s (state: '${state:-no answer}')"

#!/usr/bin/env bash
# slurm_down.sh - stop exactly the daemons slurm_up.sh started (listed in $SLURM_STARTED as "<name> <pid>"), in
# reverse start order: SIGTERM, then SIGKILL after 15 s. A pid whose process is no longer that daemon (the pid
# was reused) is left alone. SLURM_PURGE_STATE=1 also wipes job state and spool, so the next start is fresh.
set -uo pipefail
STARTED="${SLURM_STARTED:-/run/oncofhir-slurm.started}"
[ -f "$STARTED" ] || { echo "slurm_down: nothing recorded in $STARTED"; exit 0; }

stop_pid() { # stop_pid <name> <pid>
  local name=$1 pid=$2
  if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" != "$name" ]; then echo "$name: pid $pid not running"; return 0; fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "$name: pid $pid killed (SIGKILL)"; else echo "$name: pid $pid stopped"; fi
}

tac "$STARTED" | while read -r name pid; do
  [ -n "$name" ] && stop_pid "$name" "$pid"
done
rm -f "$STARTED"
if [ "${SLURM_PURGE_STATE:-0}" = 1 ]; then
  rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/*
  echo "slurm_down: purged job state and spool"
fi

#!/usr/bin/env bash
# Stop the local HAPI FHIR server started by start.sh on PORT (default 8090), by the pid in its pid file: SIGTERM,
# then SIGKILL after 30 s. The data was in memory: it is gone.
set -euo pipefail
cd "$(dirname "$0")"
port=${1:-8090}
pidfile=target/server-$port.pid
[ -f "$pidfile" ] || { echo "fhir-server: not running on port $port (no $pidfile)"; exit 0; }
pid=$(cat "$pidfile")
if kill "$pid" 2>/dev/null; then
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  echo "fhir-server: stopped (pid $pid)"
else
  echo "fhir-server: pid $pid was not running"
fi
rm -f "$pidfile"

#!/usr/bin/env bash
# Start the local HAPI FHIR server in the background, bound to 127.0.0.1, and wait until /metadata answers.
# Usage: start.sh [PORT]  (default 8090). Base URL: http://127.0.0.1:PORT/fhir. The pid goes to
# target/server-PORT.pid (stop.sh stops by it), the server's output to target/server-PORT.log.
# Environment: FHIR_SERVER_HEAP (JVM heap, default 1g), FHIR_SERVER_WAIT (seconds to wait, default 300).
set -euo pipefail
cd "$(dirname "$0")"
port=${1:-8090}
case "$port" in ''|*[!0-9]*) echo "fhir-server start: port must be a number, got '$port'" >&2; exit 2 ;; esac
pidfile=target/server-$port.pid
log=target/server-$port.log
url=http://127.0.0.1:$port/fhir
[ -d target/lib ] || { echo "fhir-server start: not built; run tools/fhir-server/install.sh first" >&2; exit 2; }
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "fhir-server: already running (pid $(cat "$pidfile")) at $url"
  exit 0
fi
java "-Xmx${FHIR_SERVER_HEAP:-1g}" -cp "target/classes:target/lib/*" org.oncofhir.fhirserver.Main \
  --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"
wait_s=${FHIR_SERVER_WAIT:-300}
start=$(date +%s)
while true; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    echo "fhir-server start: the server exited during start; last lines of $(pwd)/$log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  if python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" "$url/metadata" 2>/dev/null; then
    echo "fhir-server: ready at $url (pid $pid, $(( $(date +%s) - start )) s)"
    exit 0
  fi
  if [ $(( $(date +%s) - start )) -ge "$wait_s" ]; then
    echo "fhir-server start: no answer from $url/metadata after $wait_s s; stopping pid $pid (log: $(pwd)/$log)" >&2
    kill "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    exit 1
  fi
  sleep 1
done

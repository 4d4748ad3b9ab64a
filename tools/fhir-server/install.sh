#!/usr/bin/env bash
# Build the local HAPI FHIR JPA server (R4B, in-memory H2) from Maven Central: Maven resolves the dependencies
# (~255 jars, ~300 MB) into the local repository (~/.m2) once and copies them to target/lib; later runs are offline.
# Needs Java 17 and Maven (.ci/run installs them from Debian when missing). Idempotent: a build whose pom.xml and
# sources are unchanged is kept.
set -euo pipefail
cd "$(dirname "$0")"
for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "fhir-server install: $tool not found (needs Java 17 and Maven)" >&2; exit 2; }
done
stamp=target/.installed
digest=$(cat pom.xml $(find src -type f | sort) | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && [ -d target/lib ] && [ -d target/classes ]; then
  echo "fhir-server: already built ($(ls target/lib | wc -l) jars in $(pwd)/target/lib)"
  exit 0
fi
rm -rf target
mvn -B -q package
echo "$digest" > "$stamp"
echo "fhir-server: built ($(ls target/lib | wc -l) jars, $(du -sh target/lib | cut -f1) in $(pwd)/target/lib)"

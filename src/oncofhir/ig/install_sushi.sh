#!/usr/bin/env bash
# Install SUSHI (npm fsh-sushi, pinned) for oncofhir's `implementation_guide` rule, for offline use:
#  - fsh-sushi into $ONCOFHIR_SUSHI_HOME (default ~/.cache/oncofhir/sushi), from the npm registry;
#  - the FHIR core package hl7.fhir.r4b.core 4.3.0, from the npm registry, into the FHIR package cache
#    ~/.fhir/packages (shared with tools/hl7-validator/install.sh), where SUSHI looks for it before any server.
# Needs npm. Idempotent: a second run only checks. The one copy of the install: `bash tools/sushi/install.sh` runs
# it, and so does the workflow's implementation_guide job on first use (oncofhir.ig.install, which reads the pinned
# versions below). Concurrent installs are serialised by a lock on $ONCOFHIR_SUSHI_HOME.lock (flock), taken here
# unless the caller holds it already (ONCOFHIR_SUSHI_LOCKED=1).
set -euo pipefail

SUSHI_VERSION=3.21.0
CORE_PACKAGE=hl7.fhir.r4b.core
CORE_VERSION=4.3.0
HOME_DIR="${ONCOFHIR_SUSHI_HOME:-$HOME/.cache/oncofhir/sushi}"
PACKAGES="${FHIR_PACKAGE_CACHE:-$HOME/.fhir/packages}"

command -v npm >/dev/null || { echo "tools/sushi/install.sh: 'npm' is needed (e.g. apt-get install npm)" >&2; exit 2; }

mkdir -p "$(dirname "$HOME_DIR")" "$PACKAGES"
if [ -z "${ONCOFHIR_SUSHI_LOCKED:-}" ] && command -v flock >/dev/null; then
  exec 9>"$HOME_DIR.lock"
  flock 9
fi

if [ "$("$HOME_DIR/node_modules/.bin/sushi" --version 2>/dev/null | grep -o 'SUSHI v[0-9.]*' || true)" != "SUSHI v$SUSHI_VERSION" ]; then
  echo "sushi: fsh-sushi@$SUSHI_VERSION from the npm registry into $HOME_DIR"
  mkdir -p "$HOME_DIR"
  npm install --silent --no-audit --no-fund --prefix "$HOME_DIR" "fsh-sushi@$SUSHI_VERSION" >/dev/null
fi

target="$PACKAGES/$CORE_PACKAGE#$CORE_VERSION"
if [ ! -f "$target/package/package.json" ]; then
  echo "sushi: $CORE_PACKAGE@$CORE_VERSION from the npm registry into $target"
  # unpacked beside the cache and renamed into place: a killed install never leaves a half package that looks whole
  tmp="$(mktemp -d "$PACKAGES/.oncofhir-install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$CORE_PACKAGE@$CORE_VERSION" >/dev/null)
  mkdir -p "$tmp/unpacked"
  tar -xzf "$tmp"/*.tgz -C "$tmp/unpacked"
  rm -rf "$target"
  mv "$tmp/unpacked" "$target"
fi
[ -f "$PACKAGES/packages.ini" ] || printf '[cache]\nversion = 3\n' >"$PACKAGES/packages.ini"
echo "sushi: ready ($("$HOME_DIR/node_modules/.bin/sushi" --version | head -1), packages in $PACKAGES)"

#!/usr/bin/env bash
# Install SUSHI (npm fsh-sushi, pinned) for oncofhir's `implementation_guide` rule (ig.enabled), for offline use:
#  - fsh-sushi into $ONCOFHIR_SUSHI_HOME (default ~/.cache/oncofhir/sushi), from the npm registry;
#  - the FHIR core package hl7.fhir.r4b.core 4.3.0, from the npm registry, into the FHIR package cache
#    ~/.fhir/packages (shared with tools/hl7-validator/install.sh), where SUSHI looks for it before any server.
# Needs npm. Idempotent: a second run only checks. Nothing is downloaded when the workflow runs.
set -euo pipefail

SUSHI_VERSION=3.21.0
HOME_DIR="${ONCOFHIR_SUSHI_HOME:-$HOME/.cache/oncofhir/sushi}"
PACKAGES="${FHIR_PACKAGE_CACHE:-$HOME/.fhir/packages}"

command -v npm >/dev/null || { echo "tools/sushi/install.sh: 'npm' is needed (e.g. apt-get install npm)" >&2; exit 2; }

if [ "$("$HOME_DIR/node_modules/.bin/sushi" --version 2>/dev/null | grep -o 'SUSHI v[0-9.]*' || true)" != "SUSHI v$SUSHI_VERSION" ]; then
  echo "sushi: fsh-sushi@$SUSHI_VERSION from the npm registry into $HOME_DIR"
  mkdir -p "$HOME_DIR"
  npm install --silent --no-audit --no-fund --prefix "$HOME_DIR" "fsh-sushi@$SUSHI_VERSION" >/dev/null
fi

target="$PACKAGES/hl7.fhir.r4b.core#4.3.0"
if [ ! -f "$target/package/package.json" ]; then
  echo "sushi: hl7.fhir.r4b.core@4.3.0 from the npm registry into $target"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "hl7.fhir.r4b.core@4.3.0" >/dev/null)
  mkdir -p "$target"
  tar -xzf "$tmp"/*.tgz -C "$target"
  rm -rf "$tmp"
fi
mkdir -p "$PACKAGES"
[ -f "$PACKAGES/packages.ini" ] || printf '[cache]\nversion = 3\n' >"$PACKAGES/packages.ini"
echo "sushi: ready ($("$HOME_DIR/node_modules/.bin/sushi" --version | head -1), packages in $PACKAGES)"

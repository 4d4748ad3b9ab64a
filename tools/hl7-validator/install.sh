#!/usr/bin/env bash
# Install the official HL7 FHIR validator for oncofhir's optional `hl7_validator` stage, for offline use:
#  - its Java classpath from Maven Central (pom.xml beside this script: org.hl7.fhir.validation 6.5.18 and the
#    command line's optional dependencies) into $ONCOFHIR_HL7_HOME/lib, plus oncofhir's thin launcher
#    (src/OncofhirValidatorCli.java, compiled into $ONCOFHIR_HL7_HOME/classes);
#  - the FHIR packages the validator loads, from the npm registry, into its package cache ~/.fhir/packages:
#    hl7.fhir.r4b.core 4.3.0, hl7.fhir.xver-extensions 0.1.0 and hl7.terminology.r4 7.0.1.
# Needs java + javac 17, mvn and npm. Idempotent: a second run only checks. Nothing is downloaded at run time.
#
# hl7.terminology.r4 7.0.1 declares a dependency on hl7.fhir.uv.extensions.r4#5.2.0, which is not on the npm
# registry; the validator would try to fetch it from packages.fhir.org and fail offline. The R4B core package
# already defines the extensions oncofhir uses, so that dependency is removed from the cached copy's
# package.json (the package's content is unchanged). See docs/validation.md, "HL7 validator".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOME_DIR="${ONCOFHIR_HL7_HOME:-$HOME/.cache/oncofhir/hl7-validator}"
PACKAGES="${FHIR_PACKAGE_CACHE:-$HOME/.fhir/packages}"
SETTINGS="$(mktemp)"
trap 'rm -f "$SETTINGS"' EXIT

for tool in java javac mvn npm; do
  command -v "$tool" >/dev/null || { echo "install.sh: '$tool' is needed" >&2; exit 2; }
done

# Maven Central only (the validator's POMs also name jitpack, unreachable here and not needed).
cat >"$SETTINGS" <<'XML'
<settings><mirrors><mirror><id>central</id><mirrorOf>*</mirrorOf>
<url>https://repo.maven.apache.org/maven2</url></mirror></mirrors></settings>
XML

mkdir -p "$HOME_DIR/lib" "$HOME_DIR/classes"
if [ ! -f "$HOME_DIR/lib/.complete" ]; then
  echo "hl7-validator: resolving the classpath from Maven Central into $HOME_DIR/lib"
  mvn -q -B -s "$SETTINGS" -f "$HERE/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$HOME_DIR/lib" -DincludeScope=runtime
  touch "$HOME_DIR/lib/.complete"
fi
javac -nowarn -cp "$HOME_DIR/lib/*" -d "$HOME_DIR/classes" "$HERE/src/OncofhirValidatorCli.java" \
  "$HERE/src/OncofhirViewRunner.java"  # the second SQL-on-FHIR engine (tests/test_views_hl7.py)
cp "$HERE/logback.xml" "$HOME_DIR/logback.xml"

install_package() {  # name version
  local name="$1" version="$2" target="$PACKAGES/$1#$2" tmp
  if [ -f "$target/package/package.json" ]; then return; fi
  echo "hl7-validator: $name@$version from the npm registry into $target"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  mkdir -p "$target"
  tar -xzf "$tmp"/*.tgz -C "$target"
  rm -rf "$tmp"
}

mkdir -p "$PACKAGES"
[ -f "$PACKAGES/packages.ini" ] || printf '[cache]\nversion = 3\n' >"$PACKAGES/packages.ini"
install_package hl7.fhir.r4b.core 4.3.0
install_package hl7.fhir.xver-extensions 0.1.0
install_package hl7.terminology.r4 7.0.1
python3 - "$PACKAGES/hl7.terminology.r4#7.0.1/package/package.json" <<'PY'
import json, sys
path = sys.argv[1]
meta = json.load(open(path, encoding="utf-8"))
if meta.get("dependencies", {}).pop("hl7.fhir.uv.extensions.r4", None) is not None:
    json.dump(meta, open(path, "w", encoding="utf-8"), indent=2)
    print("hl7-validator: dropped hl7.terminology.r4's dependency on hl7.fhir.uv.extensions.r4 (not on npm)")
PY
echo "hl7-validator: ready in $HOME_DIR (packages in $PACKAGES)"

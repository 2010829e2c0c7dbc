#!/usr/bin/env bash
# Create an isolated virtualenv for Open WebUI (it is large and pins many packages,
# so it never shares BMO's environment). Idempotent: a second run only prints the version.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${OPEN_WEBUI_VENV:-$here/.venv}"
python="${PYTHON:-python3.11}"
spec="${OPEN_WEBUI_SPEC:-open-webui>=0.6,<0.13}"

if [ ! -x "$venv/bin/open-webui" ]; then
    start=$(date +%s)
    "$python" -m venv "$venv"
    # pip's configured extra indexes may not exist on every machine: drop their warnings, keep errors.
    "$venv/bin/pip" install -q --upgrade pip 2>&1 | grep -v "is ignored: it is neither" || true
    "$venv/bin/pip" install -q "$spec" 2>&1 | grep -v "is ignored: it is neither" || true
    [ -x "$venv/bin/open-webui" ] || { echo "open-webui did not install" >&2; exit 1; }
    echo "open-webui installed in $(( $(date +%s) - start ))s"
fi
"$venv/bin/pip" show open-webui | sed -n '1,2p'

#!/usr/bin/env bash
# Create an isolated virtualenv for Open WebUI (it is large and pins many packages,
# so it never shares BMO's environment). Idempotent: re-running only upgrades nothing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3.11}"
spec="${OPEN_WEBUI_SPEC:-open-webui>=0.6,<0.13}"

if [ ! -x "$venv/bin/open-webui" ]; then
    start=$(date +%s)
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "$spec"
    echo "open-webui installed in $(( $(date +%s) - start ))s"
fi
"$venv/bin/pip" show open-webui | sed -n '1,2p'

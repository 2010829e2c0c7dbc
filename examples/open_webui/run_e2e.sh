#!/usr/bin/env bash
# Install Open WebUI (first run only), then run the end-to-end test: fake model upstream ->
# `bmo serve` -> Open WebUI, all on 127.0.0.1. Prints how long each phase took.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# The environment BMO and its plugins are installed in (scripts/setup makes .venv).
python="${BMO_PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"

t0=$(date +%s)
bash "$here/setup.sh"
t1=$(date +%s)
echo "setup (install or check): $((t1 - t0))s"

timings="$(mktemp)"
cd "$repo"
BMO_E2E_OPEN_WEBUI=1 BMO_E2E_TIMINGS="$timings" "$python" -m pytest -q -p no:cacheprovider \
    -m open_webui_e2e plugins/open_webui/tests/test_owui_e2e.py plugins/open_webui/tests/test_owui_e2e_history.py "$@"
t2=$(date +%s)
echo "e2e pytest: $((t2 - t1))s; phases: $(cat "$timings")"
rm -f "$timings"

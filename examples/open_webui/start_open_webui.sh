#!/usr/bin/env bash
# Start Open WebUI headless and offline, pointed at a running BMO.
# Usage: start_open_webui.sh PORT BMO_BASE_URL [API_KEY]
#   BMO_BASE_URL ends in /v1 (e.g. http://127.0.0.1:9000/v1); API_KEY is BMO's --auth-token
#   (any non-empty string when BMO runs with --allow-no-auth on loopback).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${1:?port}"
bmo_url="${2:?BMO base URL ending in /v1}"
key="${3:-bmo-loopback}"
data="${OPEN_WEBUI_DATA_DIR:-$here/.data}"
mkdir -p "$data"

export DATA_DIR="$data"
export WEBUI_AUTH=False                       # single implicit admin, no login screen
export WEBUI_SECRET_KEY="${WEBUI_SECRET_KEY:-bmo-example-not-a-secret}"
export ENABLE_OLLAMA_API=False
export ENABLE_OPENAI_API=True
export OPENAI_API_BASE_URLS="$bmo_url"
export OPENAI_API_KEYS="$key"
# Name the task kind in a header on every request to BMO (empty for chat turns), so BMO knows a
# background task (title, tags, emoji, ...) by more than its prompt. Connection 0 is BMO.
export OPENAI_API_CONFIGS='{"0": {"headers": {"X-OpenWebUI-Task": "{{TASK}}"}}}'
export ENABLE_FORWARD_USER_INFO_HEADERS=true  # sends X-OpenWebUI-Chat-Id and X-OpenWebUI-User-*
export OFFLINE_MODE=True HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export ENABLE_VERSION_UPDATE_CHECK=False
export RAG_EMBEDDING_ENGINE=openai           # never load a local sentence-transformers model
export RAG_OPENAI_API_BASE_URL="$bmo_url" RAG_OPENAI_API_KEY="$key"
export BYPASS_EMBEDDING_AND_RETRIEVAL=True
export ENABLE_WEB_SEARCH=False ENABLE_IMAGE_GENERATION=False ENABLE_CODE_INTERPRETER=False
export ENABLE_EVALUATION_ARENA_MODELS=False ENABLE_COMMUNITY_SHARING=False
export ANONYMIZED_TELEMETRY=False SCARF_NO_ANALYTICS=true DO_NOT_TRACK=true
export ENABLE_AUTOCOMPLETE_GENERATION=False   # keystroke-level tasks cost a model call each
export GLOBAL_LOG_LEVEL="${GLOBAL_LOG_LEVEL:-WARNING}"
cd "$data"
venv="${OPEN_WEBUI_VENV:-$here/.venv}"
exec "$venv/bin/open-webui" serve --host 127.0.0.1 --port "$port"

#!/usr/bin/env bash
# A short tour of the CLI in a temporary HOME: init, add, list, describe, update, doctor.
# fixtures/fake-claude stands in for `claude`, so nothing is registered for real and no
# network is used.
set -euo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home" "$tmp/bin" "$tmp/projects/api"
ln -s "$root/fixtures/fake-claude" "$tmp/bin/claude"
ln -s "$bin" "$tmp/bin/agent-dispatch"
export HOME="$tmp/home" PATH="$tmp/bin:$PATH"
unset AGENT_DISPATCH_CONFIG AGENT_DISPATCH_JOBS_DIR
api="$tmp/projects/api"
printf '# API\nThe billing API: invoices, payments and refunds.\n' > "$api/CLAUDE.md"
printf '[project]\nname = "api"\n' > "$api/pyproject.toml"
printf '{"mcpServers": {"postgres": {}}}\n' > "$api/.mcp.json"
mkdir "$api/alembic"

run() { printf '\n$ %s\n' "$*"; "$@"; }
run agent-dispatch --version
run agent-dispatch init
run agent-dispatch add api "$api" --timeout 600 --allowed-tools Read,Grep
run agent-dispatch list
run agent-dispatch update api --model sonnet --allowed-tools none
run agent-dispatch describe api
run agent-dispatch doctor

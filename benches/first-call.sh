#!/usr/bin/env bash
# The first call through `gangway serve`, with and without keep_warm: how much of a
# backend's cold start the first client waits for. Runs each way ROUNDS times (default
# 5) against server-everything (installed by .ci/run into .peers/) and prints the median
# time from sending the tools/call to its answer, as measured by curl.
#
#   benches/first-call.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
everything=.peers/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js
[ -f "$everything" ] || { echo "server-everything is missing: run .ci/run first" >&2; exit 1; }
cargo build --release --quiet
gangway=target/release/gangway
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}'
call='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"everything__echo","arguments":{"message":"hi"}}}'

first_call() { # keep_warm -> seconds
    printf '{"expose":"tools","catalog":false,"backends":{"everything":{"command":"node","args":["%s"],"keep_warm":%s}}}' \
        "$PWD/$everything" "$1" > "$dir/config.json"
    "$gangway" serve --config "$dir/config.json" --listen 127.0.0.1:0 2> "$dir/log" &
    local pid=$!
    local url=""
    for _ in $(seq 1 100); do
        url=$(grep -o 'http://[0-9.:]*/mcp' "$dir/log" || true)
        [ -n "$url" ] && break
        sleep 0.05
    done
    if [ "$1" = true ]; then # a warm start is what is measured: wait until it is ready
        for _ in $(seq 1 200); do grep -q "backend 'everything' ready" "$dir/log" && break; sleep 0.05; done
    fi
    sid=$(curl -si "$url" "${H[@]}" -d "$init" | sed -n 's/^mcp-session-id: *//Ip' | tr -d '\r')
    curl -s "$url" "${H[@]}" -H "Mcp-Session-Id: $sid" -o /dev/null -w '%{time_total}\n' -d "$call"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cold=$(for _ in $(seq 1 "$rounds"); do first_call false; done | median)
warm=$(for _ in $(seq 1 "$rounds"); do first_call true; done | median)
awk -v r="$rounds" -v c="$cold" -v w="$warm" 'BEGIN {
    printf "| first tools/call through gangway serve | median of %s |\n|---|---|\n", r
    printf "| cold (keep_warm false) | %.1f ms |\n| warm (keep_warm true) | %.1f ms |\n", c * 1000, w * 1000
}'

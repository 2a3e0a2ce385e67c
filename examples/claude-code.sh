#!/bin/sh
# Adds gangway to Claude Code as the MCP server "gangway":
#
#   sh examples/claude-code.sh          # the native binary (`cargo install --path .`)
#   sh examples/claude-code.sh docker   # the container (`scripts/docker-images` or `docker build -t gangway .`)
#
# Claude Code's options (--scope, --env) go before the name; everything after `--` is the
# command it runs. --scope user makes gangway available in all your projects; leave it out to
# add it to the current project only. Both forms use the name "gangway": pick one
# (`claude mcp remove gangway --scope user` undoes it).
set -eu
CONFIG="${GANGWAY_CONFIG:-$HOME/.config/gangway/config.json}"

case "${1:-native}" in
native)
    claude mcp add --scope user gangway -- gangway --config "$CONFIG"
    ;;
docker)
    claude mcp add --scope user gangway -- docker run -i --rm \
        -v /var/run/docker.sock:/var/run/docker.sock \
        -v gangway-cache:/cache \
        -v "$CONFIG:/app/config.json:ro" \
        gangway
    ;;
*)
    echo "usage: $0 [native|docker]" >&2
    exit 2
    ;;
esac

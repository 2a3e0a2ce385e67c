# gangway in a container: the static gangway binary and a static docker CLI, nothing else.
#
# It packages the binary you built on the host; it does not compile Rust:
#
#   cargo build --release --target x86_64-unknown-linux-musl
#   docker build -t gangway .
#
# Run it as an MCP client would, with the host's Docker socket (backends started with
# `docker run` become sibling containers on the host) and your config mounted:
#
#   docker run -i --rm -v /var/run/docker.sock:/var/run/docker.sock \
#     -v gangway-cache:/cache -v "$PWD/config.json:/app/config.json:ro" gangway
#
# or as the shared HTTP service (`gangway serve`; set http.tokens in the config):
#
#   docker run -d -p 127.0.0.1:8000:8000 -e GANGWAY_TOKEN -v /var/run/docker.sock:/var/run/docker.sock \
#     -v gangway-cache:/cache -v "$PWD/config.json:/app/config.json:ro" gangway serve --listen 0.0.0.0:8000
#
# The docker CLI comes from DOCKER_CLI_IMAGE (any image with a static CLI at
# /usr/local/bin/docker). Where no registry is reachable, scripts/docker-images builds one
# from the host's static CLI and passes --build-arg DOCKER_CLI_IMAGE=gangway-docker-cli:local.
ARG DOCKER_CLI_IMAGE=docker:28-cli
FROM ${DOCKER_CLI_IMAGE} AS docker-cli

FROM scratch
COPY --from=docker-cli /usr/local/bin/docker /usr/local/bin/docker
COPY target/x86_64-unknown-linux-musl/release/gangway /usr/local/bin/gangway
# PATH: backends' `command` is looked up here (there is no shell and no other program).
# GANGWAY_CONFIG: mount your config at /app/config.json, or pass --config.
# XDG_CACHE_HOME: the tool catalog goes to /cache/gangway/catalog.json. The image has no
# HOME and runs with --rm, so mount a named volume there (`-v gangway-cache:/cache`) to keep
# the catalog from one start to the next; without one, every start lists tools by starting
# the backends again.
ENV PATH=/usr/local/bin \
    GANGWAY_CONFIG=/app/config.json \
    XDG_CACHE_HOME=/cache
LABEL org.opencontainers.image.title="gangway" \
      org.opencontainers.image.description="One stdio MCP server that fronts many: lazy backends, id rewriting, idle reaping" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
# `gangway serve --listen 0.0.0.0:8000` serves HTTP here (with http.tokens; see the README).
EXPOSE 8000
# gangway is PID 1: it handles SIGTERM and SIGINT itself and reaps every child.
ENTRYPOINT ["/usr/local/bin/gangway"]

# The mock MCP server (examples/mock_server.rs) as a FROM-scratch image, for the docker tests.
# scripts/docker-images builds it from a context holding only the static `mock_server`.
FROM scratch
COPY mock_server /mock_server
ENTRYPOINT ["/mock_server"]

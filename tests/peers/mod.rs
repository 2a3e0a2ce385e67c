//! End-to-end tests against real MCP peers: the official Python SDK as gangway's client and
//! the reference servers as its backends, installed into `.peers` by `.ci/run`.

mod everything;
mod inspector;
mod python_server;
mod remote;

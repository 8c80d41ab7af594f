"""Shared pytest configuration. Server fixtures live in tests/servers.py."""

pytest_plugins = ["tests.servers"]

"""Service tests use the session-wide ``pki`` fixture of tests/conftest.py."""

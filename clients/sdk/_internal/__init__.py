"""Internals of the partner SDK: no stable API; import from ``clients.sdk``."""

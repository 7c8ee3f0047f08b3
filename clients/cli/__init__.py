"""The ``custody`` command line."""

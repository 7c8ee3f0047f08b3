"""Clients of the ledger: the ``custody`` command line; later the partner SDK and audit client."""

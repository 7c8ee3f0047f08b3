"""The pure core of Custody (formats, Merkle tree, proofs, checkpoints, signatures,
admission rules) and its storage under ``ledger.storage``.

Everything outside ``ledger.storage``, ``ledger.sequencer`` and
``ledger.group_commit`` is free of I/O: functions over bytes and state.
"""

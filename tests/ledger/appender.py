"""A separate process that appends to a log and prints each acknowledged entry.

    python -m tests.ledger.appender URL LABEL BATCHES BATCH_SIZE

Prints one line per acknowledged entry, ``<index> <entry digest hex>``, only
after append_batch returned: what the caller was promised.
"""

from __future__ import annotations

import sys

from ledger.admission import Submission
from ledger.dsse import sign_envelope
from ledger.keys import private_key_from_seed
from ledger.note import NoteSigner
from ledger.receipts import Receipt
from ledger.sequencer import EnvelopeRules, Sequencer
from ledger.storage import LogStore
from tests.support import PAYLOAD_TYPE, TEST_ORIGIN, new_signer

LOG_KEY_SEED = b"\x01" * 32


def main(url: str, label: str, batches: int, batch_size: int) -> int:
    store = LogStore.open(url, migrate=False)
    sequencer = Sequencer(
        store, NoteSigner(TEST_ORIGIN, private_key_from_seed(LOG_KEY_SEED)), rules=EnvelopeRules()
    )
    signer = new_signer()
    for batch in range(batches):
        submissions = []
        for item in range(batch_size):
            payload = f"{label} batch {batch} item {item}".encode()
            envelope = sign_envelope(PAYLOAD_TYPE, payload, [signer])
            submissions.append(Submission.of(envelope, [signer.public_key]))
        outcomes = sequencer.append_batch(submissions)
        for submission, outcome in zip(submissions, outcomes, strict=True):
            if not isinstance(outcome, Receipt):
                print(f"refused {outcome}", file=sys.stderr)
                return 1
            print(outcome.index, submission.envelope.digest().hex(), flush=True)
    sequencer.close()
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))

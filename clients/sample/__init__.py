"""Sample data: a hand-checkable consortium history and a synthetic load generator.

``consortium`` builds a small, realistic log whose final lot's cobalt origins
can be worked out by hand (``EXPECTED_COBALT_ORIGINS``); ``synthetic``
streams any number of valid entries for benchmarks.
"""

from clients.sample.consortium import (
    EXPECTED_COBALT_ORIGINS,
    FINAL_LOT_ID,
    SAMPLE_FACILITIES,
    SAMPLE_PARTNERS,
    OriginShare,
    SampleEntry,
    SampleFacility,
    SamplePartner,
    partner_signer,
    sample_entries,
    trace_lot_id,
)
from clients.sample.synthetic import (
    SyntheticLog,
    synthetic_genesis_count,
    synthetic_submissions,
)

__all__ = [
    "EXPECTED_COBALT_ORIGINS",
    "FINAL_LOT_ID",
    "SAMPLE_FACILITIES",
    "SAMPLE_PARTNERS",
    "OriginShare",
    "SampleEntry",
    "SampleFacility",
    "SamplePartner",
    "SyntheticLog",
    "partner_signer",
    "sample_entries",
    "synthetic_genesis_count",
    "synthetic_submissions",
    "trace_lot_id",
]

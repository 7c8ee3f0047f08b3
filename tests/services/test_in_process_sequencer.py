"""The node with its sequencer in the node's own process (``[sequencer] own_process =
false``): the appends and streams of test_ledger_service, run again that way.

Every other service test runs the default, a sequencer in a process of its own.
"""

from __future__ import annotations

from ledger.sequencer import Sequencer
from tests.services.node_support import NodeThread
from tests.services.test_ledger_service import (
    PREFILL,
    test_a_duplicate_event_id_is_failed_precondition,
    test_a_message_mixing_good_and_bad_entries_refuses_the_bad_ones_in_band,
    test_a_state_rule_is_failed_precondition_with_its_reason,
    test_an_entry_may_depend_on_an_earlier_one_of_its_message,
    test_append_answers_with_a_receipt_that_verifies,
    test_append_stream_answers_every_entry_once,
    test_each_commit_is_counted_with_its_entries,
    test_follow_sends_the_log_then_each_new_entry,
    test_resubmitting_an_entry_is_already_exists_with_the_original_receipt,
)

SEQUENCER_OWN_PROCESS = False


def test_the_sequencer_runs_in_the_nodes_process(node: NodeThread) -> None:
    assert isinstance(node.node.sequencer, Sequencer)


__all__ = [
    "PREFILL",
    "test_a_duplicate_event_id_is_failed_precondition",
    "test_a_message_mixing_good_and_bad_entries_refuses_the_bad_ones_in_band",
    "test_a_state_rule_is_failed_precondition_with_its_reason",
    "test_an_entry_may_depend_on_an_earlier_one_of_its_message",
    "test_append_answers_with_a_receipt_that_verifies",
    "test_append_stream_answers_every_entry_once",
    "test_each_commit_is_counted_with_its_entries",
    "test_follow_sends_the_log_then_each_new_entry",
    "test_resubmitting_an_entry_is_already_exists_with_the_original_receipt",
]

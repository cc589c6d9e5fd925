"""Integrity in both modes: every entry carries LogEntry.integrity (its salt; a redacted one
its body_hash alone), the leaves recompute from what a reader gets, and the RPCs answer
(tests/api/test_integrity.py has the rest, in both modes too)."""
import os
import sys

from helpers import entry, get_log, pb, uid, write_and_wait
from test_integrity import leaf_of, read_raw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integrity"))
import verifier as V  # noqa: E402


def test_entries_carry_salts_and_redacted_ones_their_body_hash(client, log):
    secret = "token=" + uid()
    write_and_wait(client, log, [entry("a", insert_id=uid()),
                                 entry(secret, insert_id=uid(), labels={"leak": secret}),
                                 entry("c", insert_id=uid())])
    before = read_raw(client, log)
    salts = [e["salt"] for e in before]
    assert all(s is not None and len(s) == 32 for s in salts), before
    assert len(set(salts)) == 3, "entries share a salt"
    leaves = [leaf_of(e) for e in before]
    # A retry of the same insert_ids keeps the stored salts (the entries are not new).
    write_and_wait(client, log, [entry("a", insert_id=before[0]["insert_id"].decode())])
    assert [e["salt"] for e in read_raw(client, log)] == salts
    client.call(client.cmd.RevokeLogEntries,
                pb.RevokeLogEntriesRequest(log_id=log, entry_ids=["2"], reason="leak"))
    after = read_raw(client, log)
    assert after[1]["redacted"] and after[1]["salt"] is None
    assert after[1]["hash"] == V.body_hash(salts[1], before[1]["labels"], before[1]["payload"])
    assert [leaf_of(e) for e in after] == leaves, "a revocation changed a leaf"


def test_integrity_rpcs_answer_in_both_modes(client, log):
    write_and_wait(client, log, [entry("x", insert_id=uid())])
    client.call(client.query.GetLogCheckpoint, pb.GetLogCheckpointRequest(log_id=log))
    client.call(client.query.GetInclusionProof,
                pb.GetInclusionProofRequest(log_id=log, entry_id="1", tree_size=1))
    client.call(client.query.GetConsistencyProof,
                pb.GetConsistencyProofRequest(log_id=log, first_size=1, second_size=1))
    assert get_log(client, log).sealed is False
    client.call(client.cmd.SealLog, pb.SealLogRequest(log_id=log))
    assert get_log(client, log).sealed is True

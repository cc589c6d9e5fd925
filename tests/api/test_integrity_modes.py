"""The integrity RPCs in both modes: embedded serves them (tests/api/test_integrity.py has the
rest); the distributed backend does not keep a tree yet and says so with UNIMPLEMENTED, never
a wrong answer (docs/distributed.md, "To do")."""
import grpc

from helpers import DISTRIBUTED, entry, expect_code, get_log, pb, uid, write_and_wait


def test_integrity_rpcs_answer_or_say_unimplemented(client, log):
    write_and_wait(client, log, [entry("x", insert_id=uid())])
    calls = [
        lambda: client.call(client.query.GetLogCheckpoint,
                            pb.GetLogCheckpointRequest(log_id=log)),
        lambda: client.call(client.query.GetInclusionProof,
                            pb.GetInclusionProofRequest(log_id=log, entry_id="1", tree_size=1)),
        lambda: client.call(client.query.GetConsistencyProof,
                            pb.GetConsistencyProofRequest(log_id=log, first_size=1,
                                                          second_size=1)),
        lambda: client.call(client.cmd.SealLog, pb.SealLogRequest(log_id=log)),
    ]
    for call in calls:
        if DISTRIBUTED:
            err = expect_code(grpc.StatusCode.UNIMPLEMENTED, call)
            assert "tree" in err.details()
        else:
            call()
    assert get_log(client, log).sealed is (not DISTRIBUTED)

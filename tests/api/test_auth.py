"""Authentication on every RPC, and tenant isolation (a foreign log is a missing log)."""
import uuid

import grpc
import pytest

from helpers import (CMD, LOG_RPCS, QRY, create_log, entry, expect_code, get_log, list_all,
                     log_rpcs, pb, raw_stream, raw_unary, snapshot, tail_first, texts, uid,
                     write_and_wait)

UNAUTH = grpc.StatusCode.UNAUTHENTICATED


def bad_credentials(key):
    return {
        "missing": (),
        "unknown_key": (("authorization", "Bearer " + uid()),),
        "empty_bearer": (("authorization", "Bearer "),),
        "bearer_only": (("authorization", "Bearer"),),
        "no_scheme": (("authorization", key),),
        "basic_scheme": (("authorization", "Basic " + key),),
        "key_plus_junk": (("authorization", "Bearer " + key + "x"),),
        "key_prefix": (("authorization", "Bearer " + key[:-1]),),
        "other_header": (("x-api-key", key),),
        "sql_key": (("authorization", "Bearer ' OR '1'='1"),),
    }


CREDS = list(bad_credentials("k"))


@pytest.fixture(scope="module")
def auth_log(client):
    log_id = create_log(client)
    write_and_wait(client, log_id, texts(3, "auth"))
    return log_id


@pytest.mark.parametrize("rpc", LOG_RPCS)
@pytest.mark.parametrize("cred", CREDS)
def test_every_rpc_needs_a_valid_key(client, auth_log, rpc, cred):
    md = bad_credentials(client.key)[cred]
    before = snapshot(client, auth_log)
    expect_code(UNAUTH, log_rpcs(client, auth_log, metadata=md)[rpc])
    assert snapshot(client, auth_log) == before


@pytest.mark.parametrize("cred", CREDS)
def test_create_log_needs_a_valid_key(client, cred):
    md = bad_credentials(client.key)[cred]
    expect_code(UNAUTH, client.cmd.CreateLog, pb.CreateLogRequest(), metadata=md, timeout=30)


@pytest.mark.parametrize("rpc", LOG_RPCS)
def test_unauthenticated_wins_over_unknown_or_malformed_log(client, rpc):
    for log_id in (str(uuid.uuid4()), "not-a-uuid"):
        expect_code(UNAUTH, log_rpcs(client, log_id, metadata=())[rpc])


@pytest.mark.parametrize("path", [CMD + "CreateLog", CMD + "DeleteLog", CMD + "WriteLogEntries",
                                  CMD + "RevokeLogEntries", QRY + "ListLogEntries",
                                  QRY + "GetLog", QRY + "TailLogEntries"])
def test_unauthenticated_garbage_is_unauthenticated(client, path):
    if path.endswith("TailLogEntries"):
        def call():
            for _ in raw_stream(client, path, b"\x0a\xff\x01", metadata=()):
                raise AssertionError("streamed")
    else:
        def call():
            raw_unary(client, path, b"\x0a\xff\x01", metadata=())
    expect_code(UNAUTH, call)


def test_valid_key_works_on_every_rpc(client, auth_log):
    # the positive control for the tests above
    assert get_log(client, auth_log).entry_count == 3
    assert len(list_all(client, auth_log)) == 3


# ---------------------------------------------------------------- isolation

def _normalized(err, log_id):
    return err.code(), (err.details() or "").replace(log_id, "<LOG>")


@pytest.mark.parametrize("rpc", LOG_RPCS)
def test_foreign_log_answers_exactly_like_a_missing_one(client, other_client, rpc):
    mine = create_log(client, {"owner": "a"})
    write_and_wait(client, mine, [entry(f"a {i}", insert_id=f"iid-{i}") for i in range(3)])
    before = snapshot(client, mine)
    missing = str(uuid.uuid4())
    foreign = expect_code(grpc.StatusCode.NOT_FOUND, log_rpcs(other_client, mine)[rpc])
    absent = expect_code(grpc.StatusCode.NOT_FOUND, log_rpcs(other_client, missing)[rpc])
    assert _normalized(foreign, mine) == _normalized(absent, missing), \
        "a foreign log must be indistinguishable from a missing one"
    assert snapshot(client, mine) == before, f"tenant-b's {rpc} changed tenant-a's log"
    assert dict(get_log(client, mine).labels) == {"owner": "a"}


def test_foreign_write_stores_nothing_and_poisons_no_insert_id(client, other_client):
    mine = create_log(client)
    write_and_wait(client, mine, texts(2))
    before = snapshot(client, mine)
    iid = "shared-" + uid()
    expect_code(grpc.StatusCode.NOT_FOUND, other_client.call, other_client.cmd.WriteLogEntries,
                pb.WriteLogEntriesRequest(log_id=mine, entries=[entry("from b", insert_id=iid)]))
    assert snapshot(client, mine) == before
    # the owner's write with that insert_id is a new entry with its own payload
    assert write_and_wait(client, mine, [entry("from a", insert_id=iid)]) == ["3"]
    assert [e.text_payload for e in list_all(client, mine)][-1] == "from a"


def test_foreign_revoke_and_delete_change_nothing(client, other_client):
    mine = create_log(client)
    write_and_wait(client, mine, texts(3))
    before = snapshot(client, mine)
    expect_code(grpc.StatusCode.NOT_FOUND, other_client.call, other_client.cmd.RevokeLogEntries,
                pb.RevokeLogEntriesRequest(log_id=mine, entry_ids=["1", "2", "3"]))
    expect_code(grpc.StatusCode.NOT_FOUND, other_client.call, other_client.cmd.DeleteLog,
                pb.DeleteLogRequest(log_id=mine))
    assert snapshot(client, mine) == before
    assert not any(e.redacted for e in list_all(client, mine))


def test_tenants_see_only_their_own_logs_both_ways(client, other_client):
    a, b = create_log(client), create_log(other_client)
    write_and_wait(client, a, texts(2, "a"))
    write_and_wait(other_client, b, texts(2, "b"))
    expect_code(grpc.StatusCode.NOT_FOUND, get_log, client, b)
    expect_code(grpc.StatusCode.NOT_FOUND, get_log, other_client, a)
    assert [e.text_payload for e in list_all(client, a)] == ["a 0", "a 1"]
    assert [e.text_payload for e in list_all(other_client, b)] == ["b 0", "b 1"]
    # each tenant's logs number their entries on their own
    assert write_and_wait(other_client, b, texts(1)) == ["3"]


def test_foreign_tail_from_the_end_is_not_found(client, other_client):
    mine = create_log(client)
    write_and_wait(client, mine, texts(1))
    for after in ("", "0", "1"):
        foreign = expect_code(grpc.StatusCode.NOT_FOUND, tail_first, other_client, mine, after)
        missing = str(uuid.uuid4())
        absent = expect_code(grpc.StatusCode.NOT_FOUND, tail_first, other_client, missing, after)
        assert _normalized(foreign, mine) == _normalized(absent, missing)

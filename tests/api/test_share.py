"""Share links (docs/viewer.md, "Share links"): CreateShareLink makes a read-only capability
for one log and an entry id range that expires. Whoever holds the token reads that range of
that log and nothing else; expired or altered tokens are refused like unknown keys."""
import http.client
import json
import time

import grpc
import pytest

from annals.v1 import annals_pb2 as pb
from conftest import DISTRIBUTED, Client
from helpers import (WAIT, create_log, expect_code, expect_invalid, get_log, texts, uid,
                     write_and_wait)

NOT_FOUND = grpc.StatusCode.NOT_FOUND
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED


def share(c, log_id, first="", last="", ttl=0):
    return c.call(c.query.CreateShareLink, pb.CreateShareLinkRequest(
        log_id=log_id, first_entry_id=first, last_entry_id=last, ttl_seconds=ttl))


@pytest.fixture(scope="module")
def shared(server, client):
    """A log of 30 entries and a link to entries 10..20."""
    log_id = create_log(client, {"shared": "yes"})
    write_and_wait(client, log_id, texts(30, prefix="entry"))
    r = share(client, log_id, "10", "20")
    return log_id, r.token, r.expire_time.ToNanoseconds()


def holder(server, token):
    return Client(server, token)


def test_the_link_reads_its_range_and_nothing_else(server, client, shared):
    log_id, token, expire_ns = shared
    assert token.startswith("annals-share.")
    week = 7 * 86400 * 10**9
    assert abs(expire_ns - (time.time_ns() + week)) < 120 * 10**9, "7 days by default"
    h = holder(server, token)
    try:
        assert get_log(h, log_id).id == log_id
        r = h.call(h.query.ReadLogEntries, pb.ReadLogEntriesRequest(log_id=log_id, page_size=1000))
        assert [e.entry_id for e in r.entries] == [str(i) for i in range(10, 21)]
        assert r.next_entry_id == ""
        r = h.call(h.query.ReadLogEntries, pb.ReadLogEntriesRequest(
            log_id=log_id, first_entry_id="15", page_size=3))
        assert [e.entry_id for e in r.entries] == ["15", "16", "17"] and r.next_entry_id == "18"
        r = h.call(h.query.ReadLogEntries, pb.ReadLogEntriesRequest(log_id=log_id, first_entry_id="21"))
        assert list(r.entries) == []
        ids, token_ = [], ""
        while True:
            r = h.call(h.query.ListLogEntries, pb.ListLogEntriesRequest(
                log_id=log_id, page_size=4, page_token=token_))
            ids += [e.entry_id for e in r.entries]
            token_ = r.next_page_token
            if not token_:
                break
        assert ids == [str(i) for i in range(10, 21)]
        r = h.call(h.query.SearchLogEntries, pb.SearchLogEntriesRequest(query="entry", page_size=1000))
        assert sorted(int(e.entry_id) for e in r.entries) == list(range(10, 21))
        assert {e.log_id for e in r.entries} == {log_id}
        # The tail starts at the range and stops at its end.
        stream = h.call(h.query.TailLogEntries, pb.TailLogEntriesRequest(
            log_id=log_id, after_entry_id="0"), timeout=3)
        got = []
        with pytest.raises(grpc.RpcError) as ei:
            for m in stream:
                got += [e.entry_id for e in m.entries]
        assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert got == [str(i) for i in range(10, 21)]
    finally:
        h.close()


def test_the_link_writes_nothing_and_sees_no_other_log(server, client, other_client, shared):
    log_id, token, _ = shared
    mine = create_log(client)
    theirs = create_log(other_client)
    h = holder(server, token)
    try:
        before = get_log(client, log_id).entry_count
        e = expect_code(DENIED, h.call, h.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(
            log_id=log_id, entries=texts(1)))
        assert "share link" in e.details() and "WriteLogEntries" in e.details()
        for fn, req in ((h.cmd.CreateLog, pb.CreateLogRequest()),
                        (h.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log_id)),
                        (h.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(
                            log_id=log_id, entry_ids=["12"], reason="x")),
                        (h.query.ListLogs, pb.ListLogsRequest()),
                        (h.query.CreateShareLink, pb.CreateShareLinkRequest(log_id=log_id))):
            expect_code(DENIED, h.call, fn, req)
        assert get_log(client, log_id).entry_count == before
        # Another log of the same tenant, another tenant's log and a missing one: alike.
        missing = "00000000-0000-4000-8000-000000000000"
        msgs = {}
        for other in (mine, theirs, missing):
            for fn, req in ((h.query.GetLog, pb.GetLogRequest(log_id=other)),
                            (h.query.ReadLogEntries, pb.ReadLogEntriesRequest(log_id=other)),
                            (h.query.ListLogEntries, pb.ListLogEntriesRequest(log_id=other)),
                            (h.query.SearchLogEntries, pb.SearchLogEntriesRequest(
                                query="entry", log_ids=[other]))):
                e = expect_code(NOT_FOUND, h.call, fn, req)
                msgs.setdefault(fn._method, set()).add(e.details().replace(other, "ID"))
        assert all(len(v) == 1 for v in msgs.values()), msgs
    finally:
        h.close()


def test_altered_foreign_and_expired_links_are_unknown_keys(server, client, shared):
    log_id, token, _ = shared
    unknown = expect_code(UNAUTH, Client(server, "annals_" + "0" * 40).call,
                          client.query.GetLog, pb.GetLogRequest(log_id=log_id),
                          metadata=(("authorization", "Bearer annals_" + "0" * 40),)).details()
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    for bad in (flipped, token[:-1], token + "A", "annals-share.", "annals-share.x"):
        h = holder(server, bad)
        try:
            e = expect_code(UNAUTH, h.call, h.query.GetLog, pb.GetLogRequest(log_id=log_id))
            assert e.details() == unknown
        finally:
            h.close()
    short = share(client, log_id, ttl=1).token
    h = holder(server, short)
    try:
        assert get_log(h, log_id).id == log_id
        time.sleep(1.5)
        e = expect_code(UNAUTH, h.call, h.query.GetLog, pb.GetLogRequest(log_id=log_id))
        assert e.details() == unknown
    finally:
        h.close()


def test_an_open_tail_ends_when_the_link_expires(server, client):
    log_id = create_log(client)
    write_and_wait(client, log_id, texts(2))
    h = holder(server, share(client, log_id, ttl=2).token)
    try:
        stream = h.call(h.query.TailLogEntries, pb.TailLogEntriesRequest(
            log_id=log_id, after_entry_id="0"), timeout=WAIT)
        with pytest.raises(grpc.RpcError) as ei:
            for _ in stream:
                pass
        assert ei.value.code() == UNAUTH
    finally:
        h.close()


def test_bad_requests_name_their_field(client, other_client, shared):
    log_id, _, _ = shared
    expect_invalid(share, client, log_id, first="x", field="first_entry_id")
    expect_invalid(share, client, log_id, last="0", field="last_entry_id")
    expect_invalid(share, client, log_id, first="9", last="3", field="last_entry_id")
    expect_invalid(share, client, log_id, ttl=-5, field="ttl_seconds")
    expect_invalid(share, client, log_id, ttl=91 * 86400, field="ttl_seconds")
    expect_invalid(share, client, "not-a-uuid", field="log_id")
    expect_code(NOT_FOUND, share, other_client, log_id)


def test_roles_who_may_share(server, client):
    log_id = create_log(client)
    reader, _ = server.key("tenant-a", "reader", name="share-reader-" + uid()[:6])
    writer, _ = server.key("tenant-a", "writer", name="share-writer-" + uid()[:6])
    r, w = Client(server, reader), Client(server, writer)
    try:
        assert share(r, log_id).token.startswith("annals-share.")
        e = expect_code(DENIED, share, w, log_id)
        assert "reader" in e.details()
    finally:
        r.close()
        w.close()


@pytest.mark.skipif(DISTRIBUTED, reason="the HTTP port is tested once, on the embedded mode")
def test_share_over_the_json_api(tmp_path):
    from conftest import Server
    s = Server(str(tmp_path), http=True).start()
    try:
        key = s.tenant("json-share")
        c = Client(s, key)
        log_id = create_log(c)
        write_and_wait(c, log_id, texts(5))
        hc = http.client.HTTPConnection(s.http_addr, timeout=30)
        hc.request("POST", f"/v1/logs/{log_id}:share",
                   body=json.dumps({"firstEntryId": "2", "lastEntryId": "3", "ttlSeconds": "600"}),
                   headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        resp = hc.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200, body
        assert body["token"].startswith("annals-share.") and body["expireTime"].endswith("Z")
        hc.request("GET", f"/v1/logs/{log_id}/entries:read",
                   headers={"Authorization": f"Bearer {body['token']}"})
        resp = hc.getresponse()
        got = json.loads(resp.read())
        assert resp.status == 200 and [e["entryId"] for e in got["entries"]] == ["2", "3"]
        c.close()
    finally:
        s.stop()

"""Keys with roles (docs/api.md, "Keys and roles"; docs/cli.md, "Keys").

A tenant has any number of keys, made with `annalsd key create TENANT --role R...`; each
call is allowed by the key's roles or refused with PERMISSION_DENIED naming the missing
role, changing nothing; an expired or revoked key is UNAUTHENTICATED exactly like an
unknown one; the revocation audit names the key. Everything through the public API and
the `annalsd key` commands, in both modes (the distributed mode's API servers remember a
key for 5 s: revocation takes effect within that bound there, at once in the embedded
mode).
"""
import datetime
import re
import time
import uuid

import grpc
import pytest

from helpers import (DISTRIBUTED, WAIT, TailReader, create_log, entry, eventually, expect_code,
                     get_log, list_all, pb, snapshot, texts, uid, write_and_wait)
from conftest import Client

DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
ROLES = ["writer", "reader", "redactor", "admin"]
# The distributed mode's stated bound (docs/api.md): an API server trusts a key it has
# seen for 5 s; a tail checks its key every second. The tests wait up to WAIT for the
# effect (a liveness bound, never a timing assertion).
REVOCATION_BOUND = 5 if DISTRIBUTED else 0


def unknown_key_message(client):
    """What an unknown key is told: revoked and expired keys must be told the same."""
    err = expect_code(UNAUTH, client.query.ListLogs, pb.ListLogsRequest(),
                      metadata=(("authorization", "Bearer annals_" + "x" * 43),), timeout=WAIT)
    return err.details()


class Tenant:
    """A tenant of its own, its admin client and one client per role."""

    def __init__(self, server):
        self.server = server
        self.name = "keys-" + uid()[:12]
        self.admin_key = server.tenant(self.name)
        self.admin = Client(server, self.admin_key)
        self.keys = {}
        self.clients = {"admin": self.admin}
        for role in ("writer", "reader", "redactor"):
            key, key_id = server.key(self.name, role, name=role + "-key")
            self.keys[role] = key_id
            self.clients[role] = Client(server, key)

    def close(self):
        for c in self.clients.values():
            c.close()


@pytest.fixture(scope="module")
def tenant(server):
    t = Tenant(server)
    yield t
    t.close()


def fresh_log(t, n=3):
    log_id = create_log(t.admin, labels={"suite": "keys"})
    write_and_wait(t.admin, log_id, texts(n, "keys-probe"))
    return log_id


def first_tail_message(c, log_id):
    call = c.query.TailLogEntries(pb.TailLogEntriesRequest(log_id=log_id, after_entry_id="0"),
                                  metadata=c.md, timeout=WAIT)
    for resp in call:
        call.cancel()
        return resp
    raise AssertionError("tail ended with OK before sending anything")


# rpc -> (the roles that may make it besides admin, the role text the refusal names,
#         fn(client, log_id, tag) making the call)
RPCS = {
    "CreateLog": (["writer"], "writer", lambda c, log, tag: c.call(
        c.cmd.CreateLog, pb.CreateLogRequest(labels={"probe": tag}))),
    "WriteLogEntries": (["writer"], "writer", lambda c, log, tag: c.call(
        c.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(
            log_id=log, entries=[entry("written " + tag, insert_id=tag)]))),
    "GetLog": (["writer", "reader"], "writer or reader", lambda c, log, tag: c.call(
        c.query.GetLog, pb.GetLogRequest(log_id=log))),
    "RevokeLogEntries": (["redactor"], "redactor", lambda c, log, tag: c.call(
        c.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(
            log_id=log, entry_ids=["1"], reason="probe " + tag))),
    "DeleteLog": ([], "admin", lambda c, log, tag: c.call(
        c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log))),
    "ListLogEntries": (["reader"], "reader", lambda c, log, tag: c.call(
        c.query.ListLogEntries, pb.ListLogEntriesRequest(log_id=log))),
    "TailLogEntries": (["reader"], "reader", lambda c, log, tag: first_tail_message(c, log)),
    "ListLogs": (["reader"], "reader", lambda c, log, tag: c.call(
        c.query.ListLogs, pb.ListLogsRequest(label_filter={"suite": "keys"}))),
    "ReadLogEntries": (["reader"], "reader", lambda c, log, tag: c.call(
        c.query.ReadLogEntries, pb.ReadLogEntriesRequest(log_id=log, first_entry_id="1"))),
    "SearchLogEntries": (["reader"], "reader", lambda c, log, tag: c.call(
        c.query.SearchLogEntries, pb.SearchLogEntriesRequest(query="keys-probe"))),
}


def logs_labelled(c, tag):
    return [l.id for l in c.call(c.query.ListLogs,
                                 pb.ListLogsRequest(label_filter={"probe": tag})).logs]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("rpc", list(RPCS))
def test_every_rpc_against_every_role(tenant, rpc, role):
    allowed, need, call = RPCS[rpc]
    c = tenant.clients[role]
    log_id = fresh_log(tenant)
    tag = uid()
    before = snapshot(tenant.admin, log_id)
    if role == "admin" or role in allowed:
        r = call(c, log_id, tag)
        if rpc == "GetLog":
            assert r.log.id == log_id and r.log.entry_count == 3
        elif rpc == "TailLogEntries":
            assert [e.entry_id for e in r.entries][:1] == ["1"]
        elif rpc == "ReadLogEntries":
            assert [e.entry_id for e in r.entries] == ["1", "2", "3"]
        elif rpc == "ListLogEntries":
            assert len(r.entries) == 3
        elif rpc == "DeleteLog":
            expect_code(grpc.StatusCode.NOT_FOUND, get_log, tenant.admin, log_id)
        elif rpc == "CreateLog":
            assert r.log.id
        elif rpc == "RevokeLogEntries":
            eventually(lambda: _assert_redacted(tenant.admin, log_id, "1"))
        return
    err = expect_code(DENIED, call, c, log_id, tag)
    msg = err.details()
    assert f"needs the {need} role" in msg, msg
    assert rpc in msg, msg
    # Nothing changed: the log as it was, and no log made.
    assert snapshot(tenant.admin, log_id) == before
    if rpc == "CreateLog":
        assert logs_labelled(tenant.admin, tag) == []
        # A barrier: once a log made after the refused call is listed, the refused one
        # would be listed too had it been made.
        made = tenant.admin.call(tenant.admin.cmd.CreateLog,
                                 pb.CreateLogRequest(labels={"probe": tag})).log.id
        eventually(lambda: _assert_equal(logs_labelled(tenant.admin, tag), [made]))
    if rpc in ("WriteLogEntries", "RevokeLogEntries"):
        # A barrier through the same log: a later write lands after anything earlier.
        write_and_wait(tenant.admin, log_id, texts(1, "barrier"))
        after = list_all(tenant.admin, log_id)
        assert len(after) == 4 and not any(e.redacted for e in after)
        assert not any(e.insert_id == tag for e in after)


def _assert_equal(a, b):
    assert a == b, f"{a!r} != {b!r}"


def _assert_redacted(c, log_id, entry_id):
    es = {e.entry_id: e for e in list_all(c, log_id)}
    assert es[entry_id].redacted, f"entry {entry_id} is not redacted"
    return es[entry_id]


def test_refused_before_the_request_is_read(tenant):
    """A key without the role gets PERMISSION_DENIED even for a request that is invalid."""
    c = tenant.clients["reader"]
    err = expect_code(DENIED, c.call, c.cmd.WriteLogEntries,
                      pb.WriteLogEntriesRequest(log_id="not-a-uuid"))
    assert "writer" in err.details()
    c = tenant.clients["writer"]
    err = expect_code(DENIED, c.call, c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=""))
    assert "admin" in err.details()


def test_key_with_several_roles(server, tenant):
    key, _ = server.key(tenant.name, "writer", "reader", name="ci-" + uid()[:8])
    c = Client(server, key)
    try:
        log_id = create_log(c)
        write_and_wait(c, log_id, texts(2))
        assert len(list_all(c, log_id)) == 2
        expect_code(DENIED, c.call, c.cmd.RevokeLogEntries,
                    pb.RevokeLogEntriesRequest(log_id=log_id, entry_ids=["1"], reason="x"))
        expect_code(DENIED, c.call, c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log_id))
        assert get_log(c, log_id).entry_count == 2
    finally:
        c.close()


# ---------------------------------------------------------------- the audit

def test_revocation_audit_names_the_key(server, tenant):
    name = "investigator-" + uid()[:6]
    key, _ = server.key(tenant.name, "redactor", "reader", name=name)
    c = Client(server, key)
    try:
        log_id = fresh_log(tenant)
        c.call(c.cmd.RevokeLogEntries,
               pb.RevokeLogEntriesRequest(log_id=log_id, entry_ids=["2"], reason="leaked"))
        e = eventually(lambda: _assert_redacted(tenant.admin, log_id, "2"))
        assert e.revocation.actor == f"tenant:{tenant.name}/key:{name}"
        assert e.revocation.reason == "leaked"
        # The admin key tenant create made is named "admin".
        tenant.admin.call(tenant.admin.cmd.RevokeLogEntries,
                          pb.RevokeLogEntriesRequest(log_id=log_id, entry_ids=["3"],
                                                     reason="by admin"))
        e = eventually(lambda: _assert_redacted(c, log_id, "3"))
        assert e.revocation.actor == f"tenant:{tenant.name}/key:admin"
    finally:
        c.close()


# ---------------------------------------------------------------- listing keys

def test_key_list_shows_everything_but_the_key(server):
    name = "lister-" + uid()[:12]
    admin_key = server.tenant(name)
    w_key, w_id = server.key(name, "writer", name="ci")
    r_key, r_id = server.key(name, "reader", "redactor", expires="30d")
    rows, out = server.keys(name)
    for k in (admin_key, w_key, r_key):
        assert k not in out
        assert k[len("annals_"):] not in out
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"admin", "ci", r_id}  # a key without --name is named by its id
    assert by_name["admin"]["roles"] == "admin"
    assert by_name["admin"]["expires"] == "never"
    assert by_name["ci"]["id"] == w_id and by_name["ci"]["roles"] == "writer"
    assert by_name[r_id]["roles"] == "reader,redactor"
    exp = datetime.datetime.fromisoformat(by_name[r_id]["expires"][:19])
    days = (exp - datetime.datetime.utcnow()).total_seconds() / 86400
    assert 29 < days <= 30
    assert all(r["state"] == "active" for r in rows)
    # Last use: never, until the key is used.
    assert by_name["ci"]["last_used"] == "never"
    c = Client(server, w_key)
    try:
        create_log(c)
    finally:
        c.close()
    rows, _ = server.keys(name)
    used = {r["name"]: r for r in rows}["ci"]["last_used"]
    assert re.match(r"\d{4}-\d\d-\d\dT", used), used


def test_key_ids_are_random_and_tenants_apart(server):
    a, b = "iso-a-" + uid()[:10], "iso-b-" + uid()[:10]
    ka, kb = server.tenant(a), server.tenant(b)
    ids = [server.key(a, "reader")[1] for _ in range(3)] + [server.key(b, "reader")[1]]
    for i in ids:
        assert uuid.UUID(i).version == 4
    assert len(set(ids)) == len(ids)
    rows_a, out_a = server.keys(a)
    rows_b, out_b = server.keys(b)
    assert {r["id"] for r in rows_a} & {r["id"] for r in rows_b} == set()
    assert ids[3] not in out_a and not any(i in out_b for i in ids[:3])
    # Same key names in two tenants are two keys.
    server.key(a, "writer", name="same")
    server.key(b, "writer", name="same")
    # A key of tenant A reaches none of tenant B's logs, whatever its roles.
    ca, cb = Client(server, ka), Client(server, kb)
    try:
        log_b = create_log(cb)
        expect_code(grpc.StatusCode.NOT_FOUND, get_log, ca, log_b)
        expect_code(grpc.StatusCode.NOT_FOUND, ca.call, ca.cmd.DeleteLog,
                    pb.DeleteLogRequest(log_id=log_b))
        assert get_log(cb, log_b).id == log_b
        # Revoking tenant A's admin key leaves tenant B's keys working.
        admin_a = [r for r in rows_a if r["name"] == "admin"][0]["id"]
        since = time.time()
        server.revoke_key(admin_a)
        _wait_unauthenticated(ca, since)
        assert get_log(cb, log_b).id == log_b
    finally:
        ca.close()
        cb.close()


# ---------------------------------------------------------------- revocation and expiry

KEY_BOUND_S = 5  # the distributed revocation bound `annalsd key revoke` states


def _wait_unauthenticated(c, since=None):
    """The key is refused as an unknown key: at once (embedded) or within the bound. With
    `since` (the time the revocation began) and several API servers, past the bound every
    server refuses it, not only the first that forgot the key."""
    if DISTRIBUTED and since is not None:
        time.sleep(max(0.0, since + KEY_BOUND_S + 0.5 - time.time()))
    deadline = time.time() + (WAIT if DISTRIBUTED else 0)
    while True:
        try:
            c.call(c.query.ListLogs, pb.ListLogsRequest())
        except grpc.RpcError as e:
            assert e.code() == UNAUTH, f"{e.code()}: {e.details()}"
            return e.details()
        assert time.time() < deadline, "the revoked key still works"
        time.sleep(0.2)


def test_revoked_key_is_an_unknown_key(server, tenant):
    key, key_id = server.key(tenant.name, "reader", "writer", name="leaky-" + uid()[:6])
    c = Client(server, key)
    try:
        log_id = create_log(c)
        write_and_wait(c, log_id, texts(1))
        since = time.time()
        p = server.revoke_key(key_id)
        assert "revoked" in p.stdout
        if DISTRIBUTED:
            assert f"{KEY_BOUND_S} seconds" in p.stdout
        msg = _wait_unauthenticated(c, since)
        assert msg == unknown_key_message(c)
        for fn in (lambda: c.call(c.cmd.WriteLogEntries, pb.WriteLogEntriesRequest(
                       log_id=log_id, entries=texts(1))),
                   lambda: c.call(c.cmd.CreateLog, pb.CreateLogRequest()),
                   lambda: first_tail_message(c, log_id)):
            assert expect_code(UNAUTH, fn).details() == msg
        # Nothing the key could write landed; the admin still sees the log.
        assert get_log(tenant.admin, log_id).entry_count == 1
        rows, _ = server.keys(tenant.name)
        assert {r["id"]: r["state"] for r in rows}[key_id] == "revoked"
        # Revoking again is harmless; an unknown id fails.
        server.revoke_key(key_id)
        p = server.revoke_key(str(uuid.uuid4()), check=False)
        assert p.returncode == 1 and "not found" in p.stderr
    finally:
        c.close()


def test_revocation_ends_an_open_tail(server, tenant):
    key, key_id = server.key(tenant.name, "reader", name="tailer-" + uid()[:6])
    c = Client(server, key)
    try:
        log_id = fresh_log(tenant, 2)
        t = TailReader(c, log_id, "0")
        assert [e.entry_id for e in t.take(2)] == ["1", "2"]
        server.revoke_key(key_id)
        err = t.finish()  # idle: the server's tick checks the key
        assert err is not None and err.code() == UNAUTH, t._err()
        assert err.details() == unknown_key_message(c)
    finally:
        c.close()


def test_expired_key_is_an_unknown_key(server, tenant):
    key, key_id = server.key(tenant.name, "reader", name="brief-" + uid()[:6], expires="4s")
    created = time.time()
    rows, _ = server.keys(tenant.name)
    row = {r["id"]: r for r in rows}[key_id]
    expires = datetime.datetime.fromisoformat(row["expires"][:26].rstrip("Z")).replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert created - 2 < expires <= created + 4.5
    c = Client(server, key)
    try:
        log_id = fresh_log(tenant, 1)
        tail = None
        if time.time() < expires - 1.5:  # a slow machine may get here late: then skip these
            assert len(list_all(c, log_id)) == 1
            tail = TailReader(c, log_id, "0")
            tail.take(1)
        while time.time() < expires + 0.2:
            time.sleep(0.1)
        err = expect_code(UNAUTH, c.call, c.query.ListLogs, pb.ListLogsRequest())
        assert err.details() == unknown_key_message(c)
        if tail is not None:
            err = tail.finish()
            assert err is not None and err.code() == UNAUTH, tail._err()
        rows, _ = server.keys(tenant.name)
        assert {r["id"]: r["state"] for r in rows}[key_id] == "expired"
    finally:
        c.close()


# ---------------------------------------------------------------- the commands

def test_key_create_refuses_bad_input(server, tenant):
    p = server.admin("key", "create", tenant.name, "--role", "owner", check=False)
    assert p.returncode == 2 and "--role owner" in p.stderr
    p = server.admin("key", "create", tenant.name, check=False)
    assert p.returncode == 2 and "--role" in p.stderr
    p = server.admin("key", "create", tenant.name, "--role", "reader", "--name", "a/b",
                     check=False)
    assert p.returncode == 2 and "--name" in p.stderr
    p = server.admin("key", "create", tenant.name, "--role", "reader", "--expires",
                     "2001-01-01T00:00:00Z", check=False)
    assert p.returncode == 2 and "--expires" in p.stderr
    p = server.admin("key", "create", tenant.name, "--role", "reader", "--expires", "5x",
                     check=False)
    assert p.returncode == 2 and "--expires" in p.stderr
    p = server.admin("key", "create", "no-such-" + uid(), "--role", "reader", check=False)
    assert p.returncode == 1 and "not found" in p.stderr
    p = server.admin("key", "create", tenant.name, "--role", "reader", "--name", "writer-key",
                     check=False)
    assert p.returncode == 1 and "writer-key" in p.stderr  # the fixture's: names are unique
    p = server.admin("key", "list", "no-such-" + uid(), check=False)
    assert p.returncode == 1 and "not found" in p.stderr and p.stdout == ""
    # An RFC 3339 expiry is kept as given.
    _, kid = server.key(tenant.name, "reader", expires="2099-01-02T03:04:05Z")
    rows, _ = server.keys(tenant.name)
    assert {r["id"]: r for r in rows}[kid]["expires"].startswith("2099-01-02T03:04:05")

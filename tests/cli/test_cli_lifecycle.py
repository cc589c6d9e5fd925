"""`annals hold`, `annals release`, `annals log create --retention-days` and what
`annals log get` shows of retention and holds (docs/cli.md, "Retention and legal hold")."""
import json
import tempfile
import uuid

import pytest

from conftest import Server
from test_cli import EXIT_AUTH, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_USAGE, ok, run

pytestmark = pytest.mark.embedded_only("holds and retention: embedded mode only for now")


@pytest.fixture(scope="module")
def env():
    with tempfile.TemporaryDirectory(prefix="annals-cli-life-") as d:
        s = Server(d).start()
        try:
            name = "cli-life-" + uuid.uuid4().hex[:8]
            admin = s.tenant(name)
            writer, _ = s.key(name, "writer", name="ci")
            yield s, name, admin, writer
        finally:
            assert s.stop() == 0


def log_get(s, key, log_id, *extra):
    return ok(run(s, key, "log", "get", log_id, *extra)).stdout.decode()


def test_create_with_retention_and_get_shows_it(env):
    s, _, admin, _ = env
    log_id = ok(run(s, admin, "log", "create", "--retention-days", "30")).stdout.decode().strip()
    out = log_get(s, admin, log_id)
    assert "retention: 30 days after the last write\n" in out
    assert "legal_hold: no\n" in out
    assert "last_hold_change" not in out
    j = json.loads(log_get(s, admin, log_id, "--json"))
    assert j["retention_days"] == 30 and j["legal_hold"] is False
    assert "last_hold_change" not in j

    plain = ok(run(s, admin, "log", "create")).stdout.decode().strip()
    assert "retention: the tenant's period\n" in log_get(s, admin, plain)
    assert json.loads(log_get(s, admin, plain, "--json"))["retention_days"] == 0


@pytest.mark.parametrize("bad", ["-1", "x", "36501", ""])
def test_create_bad_retention_is_usage(env, bad):
    s, _, admin, _ = env
    p = run(s, admin, "log", "create", "--retention-days", bad)
    assert p.returncode == EXIT_USAGE, p.stderr
    assert b"--retention-days" in p.stderr


def test_hold_release_and_delete(env):
    s, name, admin, _ = env
    log_id = ok(run(s, admin, "log", "create")).stdout.decode().strip()
    p = ok(run(s, admin, "hold", log_id, "--reason", "case 42"))
    assert b"on legal hold" in p.stderr
    out = log_get(s, admin, log_id)
    assert "legal_hold: yes\n" in out
    assert f"last_hold_change: held at " in out and f"by tenant:{name}/key:admin\n" in out
    assert "hold_reason: case 42\n" in out
    j = json.loads(log_get(s, admin, log_id, "--json"))
    assert j["legal_hold"] is True
    assert j["last_hold_change"]["hold"] is True
    assert j["last_hold_change"]["reason"] == "case 42"
    assert j["last_hold_change"]["actor"] == f"tenant:{name}/key:admin"

    p = run(s, admin, "delete", log_id)
    assert p.returncode == EXIT_INVALID, p.stderr  # FAILED_PRECONDITION
    assert b"hold" in p.stderr
    assert "legal_hold: yes" in log_get(s, admin, log_id)

    ok(run(s, admin, "release", log_id, "--reason", "settled"))
    out = log_get(s, admin, log_id)
    assert "legal_hold: no\n" in out and "last_hold_change: released at " in out
    assert "hold_reason: settled\n" in out
    ok(run(s, admin, "delete", log_id))
    assert run(s, admin, "log", "get", log_id).returncode == EXIT_NOT_FOUND


def test_hold_needs_admin(env):
    s, _, admin, writer = env
    log_id = ok(run(s, admin, "log", "create")).stdout.decode().strip()
    p = run(s, writer, "hold", log_id, "--reason", "x")
    assert p.returncode == EXIT_AUTH, p.stderr
    assert b"admin" in p.stderr
    assert "legal_hold: no" in log_get(s, writer, log_id)  # nothing changed


def test_hold_usage(env):
    s, _, admin, _ = env
    log_id = ok(run(s, admin, "log", "create")).stdout.decode().strip()
    assert run(s, admin, "hold", log_id).returncode == EXIT_USAGE  # --reason is required
    assert run(s, admin, "release").returncode == EXIT_USAGE
    assert run(s, admin, "hold", log_id, "--reason", "r", "--bogus").returncode == EXIT_USAGE
    p = run(s, admin, "hold", log_id, "--reason", "x" * 1025)
    assert p.returncode == EXIT_INVALID and b"reason" in p.stderr
    p = run(s, admin, "hold", str(uuid.uuid4()), "--reason", "x")
    assert p.returncode == EXIT_NOT_FOUND
    assert "legal_hold: no" in log_get(s, admin, log_id)

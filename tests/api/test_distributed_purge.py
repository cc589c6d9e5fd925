"""Revocation, forensic-grade, in the engines' files (docs/distributed.md, "Revocation in the
engines" and "Rebuild"). Distributed mode only (ANNALS_MODE=distributed).

One secret is written, then revoked. Then:
  1. a replay of the committed topic from offset zero (both projections' offsets reset)
     shows no revoked byte in reads, and search (its own projection) finds it nowhere;
  2. with the purge bounds made short (annalsd flags; Cassandra's scripted step; the
     PostgreSQL checkpoint an operator runs), the secret's bytes leave every engine's
     data directory: Kafka's segments (LZ4 frames decoded), Cassandra's SSTables (LZ4
     chunks decoded) and commit log, PostgreSQL's heap files (entries and the search
     projection's search_docs, whose doc holds the text); pg_wal strictly when the
     engine deletes rather than recycles WAL segments (wal_recycle = off);
  3. `annalsd project --rebuild` rebuilds the read model from Cassandra: reads equal the
     ones before, the secret stays revoked and leaves no byte in PostgreSQL's files, and
     projection continues without loss or duplication.
Positive controls first: each scan must find the secret before the revocation, so a scan
that cannot see through an engine's encoding fails instead of passing.
"""
import os
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import BIN, DISTRIBUTED, ROOT, Client, Server
from helpers import entry, get_log, list_all, pb, uid, write_and_wait

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import enginescan  # noqa: E402

pytestmark = pytest.mark.skipif(not DISTRIBUTED, reason="distributed mode only")

# The short bounds of this test (production defaults: docs/distributed.md).
PURGE_MS, SEGMENT_MS, DELETE_DELAY_MS = 2000, 4000, 1000
SHORT = ["--purge-interval-ms", str(PURGE_MS), "--kafka-segment-ms", str(SEGMENT_MS),
         "--kafka-delete-delay-ms", str(DELETE_DELAY_MS)]
# Phase 1 must replay records the purger has not deleted yet: no pass during it.
NO_PURGE = ["--purge-interval-ms", "3600000"]


def services_dir():
    """The engines' state: ANNALS_SERVICES, else .services of the main checkout."""
    env = os.environ.get("ANNALS_SERVICES")
    if env:
        return env
    common = subprocess.run(["git", "-C", ROOT, "rev-parse", "--git-common-dir"],
                            capture_output=True, text=True).stdout.strip()
    for d in (os.path.join(ROOT, ".services"),
              os.path.join(os.path.dirname(os.path.abspath(os.path.join(ROOT, common))),
                           ".services")):
        if os.path.isdir(d):
            return d
    pytest.skip("no engines' data directories (.services) found; set ANNALS_SERVICES")


def broker_check_interval_ms(svc):
    """log.retention.check.interval.ms of the running broker (its rendered config)."""
    v = 300000
    for d, _, files in os.walk(os.path.join(svc, "kafka")):
        for f in files:
            if f == "server.properties":
                for line in open(os.path.join(d, f)):
                    if line.startswith("log.retention.check.interval.ms="):
                        v = int(line.split("=", 1)[1])
    return v


def psql(sql, superuser=False, svc=None):
    if superuser:
        run = next((os.path.join(svc, "postgres", n, "run")
                    for n in sorted(os.listdir(os.path.join(svc, "postgres")))
                    if os.path.isdir(os.path.join(svc, "postgres", n, "run"))), None)
        cmd = ["psql", "-h", run, "-U", "postgres", "-d", "annals"]
        env = dict(os.environ)
    else:
        cmd = ["psql", "-h", "127.0.0.1", "-U", "annals", "-d", "annals"]
        env = dict(os.environ, PGPASSWORD="annals")
    out = subprocess.run(cmd + ["-v", "ON_ERROR_STOP=1", "-Atc", sql], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def cassandra_purge(ns, svc, all_tables=False):
    out = subprocess.run([os.path.join(ROOT, "scripts", "cassandra-purge.sh"), ns] +
                         (["--all"] if all_tables else []), capture_output=True, text=True,
                         env=dict(os.environ, SERVICES=svc), timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def scans(ns, svc, needles):
    """{engine: [(file, needle)]} over the engines' whole state directories."""
    return {
        "kafka": enginescan.scan(os.path.join(svc, "kafka"), needles, (ns + ".",), "kafka"),
        "cassandra": enginescan.scan(os.path.join(svc, "cassandra"), needles, (ns,),
                                     "cassandra"),
        "postgres": enginescan.scan(os.path.join(svc, "postgres"), needles),
    }


def search_hits(c, query):
    """Entry ids SearchLogEntries finds for the query, the whole walk."""
    q = query.decode() if isinstance(query, bytes) else query
    ids, token = [], ""
    while True:
        r = c.call(c.query.SearchLogEntries,
                   pb.SearchLogEntriesRequest(query=q, page_token=token))
        ids += [e.entry_id for e in r.entries]
        token = r.next_page_token
        if not token:
            return ids


def pg_wal_only(hits):
    return [h for h in hits if "pg_wal" in h[0].split(os.sep)]


@pytest.mark.timeout(1500)
def test_revoked_bytes_leave_the_engines_and_no_replay_or_rebuild_resurrects_them():
    svc = services_dir()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="annals-purge-") as d:
        s = Server(d, extra_args=NO_PURGE).start()
        ns = s.namespace()
        c = Client(s, s.tenant("purge"))
        try:
            log = c.call(c.cmd.CreateLog, pb.CreateLogRequest(labels={"t": "purge"})).log.id
            secret = ("PURGE-" + uid() + uid()).encode()
            lkey = ("LKEY-" + uid()).encode()
            es = [entry(f"keep {i} " + uid(), insert_id=uid()) for i in range(20)] + \
                [entry("before " + secret.decode() + " after", insert_id=uid(),
                       labels={lkey.decode(): "v"})] + \
                [entry(f"keep2 {i} " + uid(), insert_id=uid()) for i in range(20)]
            ids = write_and_wait(c, log, es)
            needles = [secret, lkey]
            before = [(e.entry_id, e.text_payload) for e in list_all(c, log)]
            # The search projection has the secret (its doc; it may trail the browse one).
            doc = f'SELECT count(*) FROM "{ns}".search_docs WHERE entry_id = {ids[20]}' \
                f" AND log_id = '{log}'"
            deadline = time.time() + 30
            while psql(doc) != "1" and time.time() < deadline:
                time.sleep(0.2)
            assert psql(doc) == "1"
            assert search_hits(c, secret) == [ids[20]]

            # Positive controls: every engine's scan sees the secret before the revocation.
            cassandra_purge(ns, svc)  # flush: the secret in an LZ4-compressed SSTable
            psql("CHECKPOINT", superuser=True, svc=svc)  # the heap pages on disk
            h = scans(ns, svc, needles)
            assert any(f.startswith("node") and "log_batches" in f for f, _ in h["cassandra"]), \
                f"the Cassandra scan does not see the secret before revocation: {h}"
            assert h["kafka"], "the Kafka scan does not see the secret before revocation"
            assert [x for x in h["postgres"] if "base" in x[0]], \
                f"the PostgreSQL scan does not see the secret before revocation: {h}"

            c.call(c.cmd.RevokeLogEntries, pb.RevokeLogEntriesRequest(
                log_id=log, entry_ids=[ids[20]], reason="purge test"))
            after = list_all(c, log)
            assert after[20].redacted and secret not in after[20].SerializeToString()

            # 1. Replay of the committed topic from offset zero.
            assert s.stop() == 0
            psql(f'UPDATE "{ns}".projector_offsets SET next_offset = 0;'
                 f' UPDATE "{ns}".search_offsets SET next_offset = 0')
            s.start()
            time.sleep(3)
            assert search_hits(c, secret) == [] and search_hits(c, secret[:12]) == []
            assert psql(doc) == "0", "the replay put the revoked doc back"
            got = list_all(c, log)
            assert [(e.entry_id, e.redacted) for e in got] == \
                [(e.entry_id, e.redacted) for e in after]
            assert all(secret not in e.SerializeToString() and lkey not in
                       e.SerializeToString() for e in got), "the replay resurrected the secret"

            # 2. The bounds: short purge settings, Cassandra's step, a PostgreSQL checkpoint.
            assert s.stop() == 0
            s.extra = SHORT
            s.start()
            t2 = time.time()
            check_ms = broker_check_interval_ms(svc)
            bound = (SEGMENT_MS + 2 * PURGE_MS + check_ms + DELETE_DELAY_MS) / 1000 + 30
            # Cassandra: roll the commit log segment that holds the write (8 MiB here):
            # write past it, then flush every table (scripts/cassandra-purge.sh --all).
            filler = c.call(c.cmd.CreateLog, pb.CreateLogRequest()).log.id
            blob = os.urandom(64 * 1024).hex()[:100 * 1024]
            for _ in range(10):
                write_and_wait(c, filler, [entry(blob + uid(), insert_id=uid())
                                           for _ in range(10)])
            cassandra_purge(ns, svc, all_tables=True)
            deadline = time.time() + bound
            while True:
                psql("SELECT pg_switch_wal(); CHECKPOINT", superuser=True, svc=svc)
                h = scans(ns, svc, needles)
                wal = pg_wal_only(h["postgres"])
                strict = {k: [x for x in v if x not in wal] for k, v in h.items()}
                if not any(strict.values()) or time.time() > deadline:
                    break
                time.sleep(10)
            took = time.time() - t2
            assert not any(strict.values()), \
                f"revoked bytes still in the engines' files after the bound ({bound:.0f} s): " \
                f"{strict}"
            recycle = psql("SHOW wal_recycle")
            if wal:
                assert recycle == "on", f"revoked bytes in pg_wal with wal_recycle off: {wal}"
                print(f"\nnote: revoked bytes remain in recycled WAL segments {wal} "
                      "(wal_recycle = on: they are overwritten as WAL advances; "
                      "docs/distributed.md)")
            print(f"\npurge: every engine clean {took:.0f} s after the short bounds were set "
                  f"(bound {bound:.0f} s; {time.time() - t0:.0f} s since the test began)")

            # 3. Rebuild from Cassandra (projectors stopped), then projection continues.
            assert s.stop() == 0
            out = subprocess.run([os.path.join(BIN, "annalsd"), "project", "--rebuild",
                                  "--namespace", ns], capture_output=True, text=True,
                                 timeout=600)
            assert out.returncode == 0, out.stderr
            s.start()
            got = list_all(c, log)
            assert [(e.entry_id, e.text_payload, e.redacted) for e in got] == \
                [(e.entry_id, e.text_payload, e.redacted) for e in after]
            assert all(secret not in e.SerializeToString() for e in got)
            assert search_hits(c, secret) == []
            assert search_hits(c, "keep2 3 ") != []  # the rebuilt search projection answers
            assert psql(f'SELECT count(*) FROM "{ns}".search_docs WHERE log_id = \'{log}\'') \
                == str(len(before) - 1), "the rebuild's search docs: all but the revoked one"
            assert [e.entry_id for e in got] == [i for i, _ in before]
            more = write_and_wait(c, log, [entry(f"post {i}", insert_id=uid())
                                           for i in range(5)])
            got = list_all(c, log)
            assert [e.entry_id for e in got] == [i for i, _ in before] + more
            assert get_log(c, log).entry_count == len(before) + 5
            assert len(list_all(c, filler)) == 10 * 10
            psql("CHECKPOINT", superuser=True, svc=svc)
            h = enginescan.scan(os.path.join(svc, "postgres"), needles)
            assert [x for x in h if x not in pg_wal_only(h)] == [], \
                f"the rebuild put revoked bytes back into PostgreSQL's files: {h}"
        finally:
            c.close()
            if s.proc:
                s.stop()

#!/usr/bin/env python3
"""The workloads of bench_cql.c with the Python cassandra-driver (protocol v4,
one connection, the same window of requests in flight). Prints one line:
    py <workload> <ops> <seconds> <ops/s>
Usage: bench_cql.py WORKLOAD N W [B] [ROUND]
"""
import os
import sys
import time

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.concurrent import execute_concurrent_with_args, execute_concurrent
from cassandra.policies import RoundRobinPolicy
from cassandra.query import BatchStatement, BatchType


def main():
    wl, n, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    bsz = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    rnd = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    host, _, port = os.environ.get("ANN_CQL_CONTACT", "127.0.0.1:9042").partition(":")
    auth = PlainTextAuthProvider(os.environ.get("ANN_CQL_USER", "cassandra"),
                                 os.environ.get("ANN_CQL_PASSWORD", "cassandra"))
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(),
                               consistency_level=ConsistencyLevel.ONE, request_timeout=30)
    cluster = Cluster([host], port=int(port or 9042), auth_provider=auth, protocol_version=4,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    s = cluster.connect()
    s.execute("CREATE KEYSPACE IF NOT EXISTS ann_bench WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute("CREATE TABLE IF NOT EXISTS ann_bench.kv (k bigint PRIMARY KEY, v text)")
    s.execute("CREATE TABLE IF NOT EXISTS ann_bench.rows (p bigint, c int, v text, "
              "PRIMARY KEY (p, c))")
    s.execute("CREATE TABLE IF NOT EXISTS ann_bench.lwt (k bigint PRIMARY KEY, v bigint)")
    payload = "x" * 100
    base = (2 << 40) + rnd * 10_000_000  # never the C client's keys

    if wl == "insert":
        ps = s.prepare("INSERT INTO ann_bench.kv (k, v) VALUES (?, ?)")
        args = [(base + i, payload) for i in range(n)]
        t0 = time.monotonic()
        res = execute_concurrent_with_args(s, ps, args, concurrency=w, raise_on_first_error=True)
        t1 = time.monotonic()
        ops = n
    elif wl == "batch":
        ps = s.prepare("INSERT INTO ann_bench.rows (p, c, v) VALUES (?, ?, ?)")
        nb = n // bsz
        t0 = time.monotonic()
        # batches are built inside the timed section, as the C client does
        stmts = []
        for b in range(nb):
            bs = BatchStatement(batch_type=BatchType.UNLOGGED, consistency_level=ConsistencyLevel.ONE)
            for j in range(bsz):
                bs.add(ps, (base + b, j, payload))
            stmts.append((bs, ()))
        res = execute_concurrent(s, stmts, concurrency=w, raise_on_first_error=True)
        t1 = time.monotonic()
        ops = nb * bsz
    elif wl == "lwt":
        ins = s.prepare("INSERT INTO ann_bench.lwt (k, v) VALUES (?, 0)")
        upd = s.prepare("UPDATE ann_bench.lwt SET v = ? WHERE k = ? IF v = ?")
        upd.serial_consistency_level = ConsistencyLevel.LOCAL_SERIAL
        execute_concurrent_with_args(s, ins, [(base + i,) for i in range(n)], concurrency=w,
                                     raise_on_first_error=True)
        t0 = time.monotonic()
        res = execute_concurrent_with_args(s, upd, [(1, base + i, 0) for i in range(n)],
                                           concurrency=w, raise_on_first_error=True)
        t1 = time.monotonic()
        for ok, rows in res:
            if not ok or not rows.one()[0]:
                sys.exit("lwt not applied")
        ops = n
    else:
        sys.exit(f"unknown workload {wl}")
    print(f"py {wl} {ops} {t1 - t0:.3f} {ops / (t1 - t0):.0f}")
    cluster.shutdown()


if __name__ == "__main__":
    main()

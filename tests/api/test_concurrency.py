"""Several writers at once: dense ids, every entry exactly once, each request consecutive."""
import random
import threading

import grpc

from conftest import Client
from helpers import (assert_dense, create_log, entry, expect_code, get_log, list_all, pb,
                     summarize, uid, write, write_and_wait)


def run_threads(n, target):
    errors = []

    def wrap(i):
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((i, repr(e)))

    ts = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


def check_log(c, log_id, acked):
    """acked: list of (entries, ids) per acknowledged request."""
    got = list_all(c, log_id)
    n = sum(len(es) for es, _ in acked)
    assert len(got) == n, f"{len(got)} entries listed, {n} acknowledged"
    assert_dense(got, n)
    by_iid = {}
    for e in got:
        assert e.insert_id not in by_iid, f"insert_id {e.insert_id} stored twice"
        by_iid[e.insert_id] = e
    for es, ids in acked:
        nums = [int(i) for i in ids]
        assert nums == list(range(nums[0], nums[0] + len(nums))), \
            f"one request's ids are not consecutive: {summarize(nums)}"
        for e, i in zip(es, ids):
            g = by_iid[e.insert_id]
            assert g.entry_id == i and g.text_payload == e.text_payload
    assert get_log(c, log_id).entry_count == n


def test_many_writers_one_log(server, client):
    log_id = create_log(client)
    acked, lock = [], threading.Lock()

    def writer(i):
        c = Client(server, client.key)
        rnd = random.Random(i)
        try:
            for r in range(20):
                es = [entry(f"w{i} r{r} e{k}", insert_id=uid())
                      for k in range(rnd.choice([1, 1, 2, 3, 10, 50, 200]))]
                ids = write_and_wait(c, log_id, es)
                with lock:
                    acked.append((es, ids))
        finally:
            c.close()

    run_threads(8, writer)
    check_log(client, log_id, acked)


def test_many_writers_shared_channel_many_logs(client):
    logs = [create_log(client) for _ in range(4)]
    acked = {log_id: [] for log_id in logs}
    lock = threading.Lock()

    def writer(i):
        rnd = random.Random(100 + i)
        for r in range(30):
            log_id = logs[rnd.randrange(len(logs))]
            es = [entry(f"{i}/{r}/{k}", insert_id=uid()) for k in range(rnd.randint(1, 30))]
            ids = write_and_wait(client, log_id, es)
            with lock:
                acked[log_id].append((es, ids))

    run_threads(6, writer)
    for log_id in logs:
        check_log(client, log_id, acked[log_id])


def test_concurrent_retries_of_one_request_store_it_once(server, client):
    log_id = create_log(client)
    write_and_wait(client, log_id, [entry("first", insert_id=uid())])
    for round_ in range(5):
        batch = [entry(f"r{round_} {k}", insert_id=uid()) for k in range(40)]
        start = threading.Barrier(6)
        results = [None] * 6

        def retry(i):
            c = Client(server, client.key)
            try:
                start.wait()
                results[i] = write_and_wait(c, log_id, batch)
            finally:
                c.close()

        run_threads(6, retry)
        assert all(r == results[0] for r in results), results
        base = 2 + 40 * round_
        assert results[0] == [str(i) for i in range(base, base + 40)]
    got = list_all(client, log_id)
    assert_dense(got, 201)
    assert len({e.insert_id for e in got}) == 201


def test_overlapping_batches_from_many_writers(server, client):
    """Writers send overlapping slices of one pool of entries; each entry is stored once and
    every writer is told the same id for it."""
    log_id = create_log(client)
    pool = [entry(f"pool {k}", insert_id=f"pool-{k}") for k in range(300)]
    told, lock = {}, threading.Lock()

    def writer(i):
        rnd = random.Random(i)
        c = Client(server, client.key)
        try:
            for _ in range(15):
                a = rnd.randrange(300)
                b = min(300, a + rnd.randint(1, 40))
                ids = write_and_wait(c, log_id, pool[a:b])
                with lock:
                    for e, id_ in zip(pool[a:b], ids):
                        told.setdefault(e.insert_id, set()).add(id_)
        finally:
            c.close()

    run_threads(6, writer)
    assert all(len(v) == 1 for v in told.values()), \
        {k: v for k, v in told.items() if len(v) > 1}
    got = list_all(client, log_id)
    assert_dense(got)
    assert len(got) == len(told) == len({e.insert_id for e in got})
    for e in got:
        assert {e.entry_id} == told[e.insert_id]


def test_writes_racing_a_delete(server, client):
    log_id = create_log(client)
    write_and_wait(client, log_id, [entry("x", insert_id=uid())])
    outcomes, lock = [], threading.Lock()
    go = threading.Barrier(5)

    def worker(i):
        c = Client(server, client.key)
        try:
            go.wait()
            if i == 0:
                c.call(c.cmd.DeleteLog, pb.DeleteLogRequest(log_id=log_id))
                return
            for _ in range(20):
                try:
                    write(c, log_id, [entry("racing", insert_id=uid())])
                    code = grpc.StatusCode.OK
                except grpc.RpcError as e:
                    code = e.code()
                with lock:
                    outcomes.append(code)
        finally:
            c.close()

    run_threads(5, worker)
    assert set(outcomes) <= {grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND}, set(outcomes)
    expect_code(grpc.StatusCode.NOT_FOUND, get_log, client, log_id)
    expect_code(grpc.StatusCode.NOT_FOUND, list_all, client, log_id)

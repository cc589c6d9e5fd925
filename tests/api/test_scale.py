"""Larger workloads, checked against a model: many logs, long logs, out-of-order times.

They aim at the places where a store keeps derived state (open-log caches, in-memory
indexes, dedup tables keyed by hashes) and where small tests pass by luck.
"""
import random

from google.protobuf import timestamp_pb2

from helpers import (SANITIZED, TailReader, create_log, entry, get_log, ids_of, list_all, uid,
                     write_and_wait)

SCALE = 4 if SANITIZED else 1


def test_more_logs_than_a_cache_holds(client):
    """Hundreds of logs written in turn, then revisited: ids continue, retries dedup."""
    n = 300 // SCALE
    logs, first = [], []
    for i in range(n):
        log_id = create_log(client, {"i": str(i)})
        es = [entry(f"log {i} a", insert_id=f"a-{i}"), entry(f"log {i} b", insert_id=f"b-{i}")]
        assert write_and_wait(client, log_id, es) == ["1", "2"]
        logs.append(log_id)
        first.append(es)
    for i, log_id in enumerate(logs):
        assert write_and_wait(client, log_id, first[i][::-1]) == ["2", "1"], i
        assert write_and_wait(client, log_id, [entry(f"log {i} c", insert_id=uid())]) == ["3"]
    for i, log_id in enumerate(logs):
        got = list_all(client, log_id)
        assert [e.text_payload for e in got] == [f"log {i} a", f"log {i} b", f"log {i} c"]
        assert get_log(client, log_id).entry_count == 3


def test_long_log_dedup_has_no_false_hits(client, log):
    """200,000 distinct insert_ids: each must get a fresh id (a dedup table keyed by short
    hashes sees collisions at this size and must confirm them); a retry of any earlier
    batch must get its old ids back."""
    total, batch = 200_000 // SCALE, 10_000
    sent = []
    for start in range(0, total, batch):
        es = [entry(f"e{start + k}", insert_id=uid()) for k in range(batch)]
        ids = write_and_wait(client, log, es)
        assert ids == [str(start + k + 1) for k in range(batch)], \
            f"batch at {start}: an unseen insert_id was taken for a duplicate"
        sent.append(es)
    rnd = random.Random(3)
    for b in rnd.sample(range(len(sent)), 3):
        assert write_and_wait(client, log, sent[b]) == \
            [str(b * batch + k + 1) for k in range(batch)]
    assert get_log(client, log).entry_count == total
    got = list_all(client, log)
    assert len(got) == total and len({e.insert_id for e in got}) == total


def ts_ns(ns):
    return timestamp_pb2.Timestamp(seconds=ns // 10**9, nanos=ns % 10**9)


def test_random_times_against_a_model(client, log):
    """Rounds of writes whose times are in order, reversed, random or tied; after each
    round the listing and random windows must match a sorted model exactly."""
    rnd = random.Random(11)
    model = []  # (time_ns, id, payload)
    base = 1_700_000_000 * 10**9
    for rnd_no in range(6):
        n = rnd.choice([500, 1500, 3000]) // SCALE
        shape = ["ordered", "reversed", "random", "ties", "ordered", "random"][rnd_no]
        if shape == "ordered":
            times = [base + rnd_no * 10**12 + k * 1000 for k in range(n)]
        elif shape == "reversed":
            times = [base + 5 * 10**12 - k * 7 for k in range(n)]
        elif shape == "random":
            times = [base + rnd.randrange(-10**13, 10**13) for _ in range(n)]
        else:
            times = [base + rnd.choice([0, 1, 10**9]) for _ in range(n)]
        for s in range(0, n, 700):
            chunk = times[s:s + 700]
            es = [entry(f"r{rnd_no} k{s + k}", insert_id=uid(), time=ts_ns(t))
                  for k, t in enumerate(chunk)]
            ids = write_and_wait(client, log, es)
            model += [(t, int(i), e.text_payload) for t, i, e in zip(chunk, ids, es)]
        model.sort()
        got = list_all(client, log, page_size=rnd.choice([1000, 333]))
        assert [(e.time.ToNanoseconds(), int(e.entry_id), e.text_payload) for e in got] == model
        for _ in range(5):
            a, b = sorted(rnd.choice(model)[0] + rnd.choice([-1, 0, 1]) for _ in range(2))
            want = [m for m in model if a <= m[0] < b]
            got = list_all(client, log, start_time=ts_ns(a), end_time=ts_ns(b),
                           page_size=rnd.choice([7, 100, 1000]))
            assert [(e.time.ToNanoseconds(), int(e.entry_id)) for e in got] == \
                [(m[0], m[1]) for m in want], (shape, a, b)
    assert sorted(int(i) for i in ids_of(list_all(client, log))) == \
        list(range(1, len(model) + 1))


def test_big_entries_fit_a_default_client(client, log):
    """Pages and tail messages of 250 KiB entries stay readable by a client with gRPC's
    default 4 MiB receive limit (this suite's client has the defaults); walking the pages
    and following the tail still yield every entry once."""
    big = [entry(chr(97 + i % 26) * (250 * 1024) + f" #{i}", insert_id=uid())
           for i in range(40)]
    write_and_wait(client, log, big[:20])
    write_and_wait(client, log, big[20:])
    for page_size in (0, 1000, 30):
        got = list_all(client, log, page_size=page_size)
        assert [e.text_payload for e in got] == [e.text_payload for e in big]
    t = TailReader(client, log, "0")
    try:
        got = t.take(40)
    finally:
        t.cancel()
    assert ids_of(got) == [str(i) for i in range(1, 41)]

"""Writes the seed corpus for fuzz_service: one valid request per RPC shape.

Run from the repository root with the generated stubs on the path:
  .venv/bin/python fuzz/api/make_corpus.py build/py fuzz/api/corpus
"""
import os
import sys

sys.path.insert(0, sys.argv[1])
from annals.v1 import annals_pb2 as pb  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402

LOG = "00000000-0000-4000-8000-000000000001"
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
s = struct_pb2.Struct()
s.update({"a": 1.5, "b": [1, "x", None, True, {"c": []}], "d": {"e": "f"}})
seeds = {
    "create": (0, pb.CreateLogRequest(labels={"job": "etl", "run": "7"})),
    "delete": (1, pb.DeleteLogRequest(log_id=LOG)),
    "write_text": (2, pb.WriteLogEntriesRequest(log_id=LOG, entries=[
        pb.LogEntry(text_payload="hello \x1b[31m\x00", insert_id="a", severity=300,
                    labels={"k": "v"}),
        pb.LogEntry(text_payload="again", insert_id="a"),
        pb.LogEntry(text_payload="t", time={"seconds": 5, "nanos": 7})])),
    "write_json": (2, pb.WriteLogEntriesRequest(log_id=LOG, entries=[
        pb.LogEntry(json_payload=s, log_id=LOG)])),
    "revoke": (3, pb.RevokeLogEntriesRequest(log_id=LOG, entry_ids=["1", "2"], reason="x")),
    "list": (4, pb.ListLogEntriesRequest(log_id=LOG, page_size=1, text_contains="he",
                                         min_severity=100, start_time={"seconds": 1})),
    "get": (5, pb.GetLogRequest(log_id=LOG)),
    "tail": (6, pb.TailLogEntriesRequest(log_id=LOG, after_entry_id="0")),
    "list_logs": (7, pb.ListLogsRequest(label_filter={"job": "etl"}, page_size=1,
                                        start_time={"seconds": 0}, page_token="AQI")),
    "read": (8, pb.ReadLogEntriesRequest(log_id=LOG, first_entry_id="2", page_size=2)),
    "search": (9, pb.SearchLogEntriesRequest(query="hel", log_ids=[LOG], ignore_case=True,
                                             label_filter={"k": "v"}, page_size=1,
                                             end_time={"seconds": 9})),
    "search_short": (9, pb.SearchLogEntriesRequest(query="\x00", page_token="AQMx")),
}
for name, (rpc, msg) in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([rpc]) + msg.SerializeToString())

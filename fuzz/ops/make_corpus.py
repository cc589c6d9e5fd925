"""Seeds for fuzz_reflection: one ServerReflectionRequest of each kind, valid and not.
Run with the test venv: .venv/bin/python fuzz/ops/make_corpus.py"""
import hashlib
import os

from grpc_reflection.v1alpha import reflection_pb2 as r

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
seeds = [
    r.ServerReflectionRequest(list_services=""),
    r.ServerReflectionRequest(host="h", list_services="*"),
    r.ServerReflectionRequest(file_by_filename="annals/v1/annals.proto"),
    r.ServerReflectionRequest(file_by_filename="google/protobuf/struct.proto"),
    r.ServerReflectionRequest(file_by_filename="nope.proto"),
    r.ServerReflectionRequest(file_containing_symbol="annals.v1.LoggingQueryService"),
    r.ServerReflectionRequest(file_containing_symbol=".annals.v1.LogEntry"),
    r.ServerReflectionRequest(file_containing_symbol="annals.v1.LoggingCommandService.WriteLogEntries"),
    r.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.HealthCheckResponse.ServingStatus"),
    r.ServerReflectionRequest(file_containing_extension=r.ExtensionRequest(
        containing_type="annals.v1.LogEntry", extension_number=5)),
    r.ServerReflectionRequest(file_containing_extension=r.ExtensionRequest()),
    r.ServerReflectionRequest(all_extension_numbers_of_type="annals.v1.LogEntry"),
    r.ServerReflectionRequest(all_extension_numbers_of_type="x"),
    r.ServerReflectionRequest(),
]
os.makedirs(OUT, exist_ok=True)
raw = [s.SerializeToString() for s in seeds] + [b"\xff\xff\xff", b"\x1a\x80\x80\x80\x80\x10"]
for b in raw:
    with open(os.path.join(OUT, hashlib.sha1(b).hexdigest()), "wb") as f:
        f.write(b)
print(len(raw), "seeds in", OUT)

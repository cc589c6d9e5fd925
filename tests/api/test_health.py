"""The gRPC conventions an operator's tools expect (docs/operations.md): the standard health
checking protocol (grpc.health.v1.Health) and server reflection (grpc.reflection.v1 and
v1alpha), driven by the clients the gRPC project ships (grpcio-health-checking,
grpcio-reflection) and by messages built only from reflected descriptors."""
import signal
import tempfile

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase)

from conftest import DISTRIBUTED, SCALED, Server
from helpers import WAIT, expect_code

ANNALS_SERVICES = ["annals.v1.LoggingCommandService", "annals.v1.LoggingQueryService"]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


@pytest.fixture(scope="module")
def channel(server):
    ch = grpc.insecure_channel(server.addr, options=[("grpc.use_local_subchannel_pool", 1)])
    yield ch
    ch.close()


# ---------------------------------------------------------------- health

@pytest.mark.parametrize("service", [""] + ANNALS_SERVICES)
def test_check_says_serving(channel, service):
    h = health_pb2_grpc.HealthStub(channel)
    r = h.Check(health_pb2.HealthCheckRequest(service=service), timeout=WAIT)
    assert r.status == SERVING


def test_check_needs_no_key(channel):
    """Load balancers probe without credentials: no authorization metadata, still answered."""
    h = health_pb2_grpc.HealthStub(channel)
    assert h.Check(health_pb2.HealthCheckRequest(), timeout=WAIT).status == SERVING


@pytest.mark.parametrize("service", ["nope", "annals.v1.LoggingCommandServic",
                                     "grpc.health.v1.Health.Check", "annals.v1"])
def test_check_of_an_unknown_service_is_not_found(channel, service):
    h = health_pb2_grpc.HealthStub(channel)
    err = expect_code(grpc.StatusCode.NOT_FOUND, h.Check,
                      health_pb2.HealthCheckRequest(service=service), timeout=WAIT)
    assert service in err.details()


def test_watch_sends_the_status_at_once(channel):
    h = health_pb2_grpc.HealthStub(channel)
    for service in [""] + ANNALS_SERVICES:
        stream = h.Watch(health_pb2.HealthCheckRequest(service=service), timeout=WAIT)
        first = next(stream)
        stream.cancel()
        assert first.status == SERVING


def test_watch_of_an_unknown_service_says_service_unknown(channel):
    """The protocol: Watch does not fail for an unknown service, it reports SERVICE_UNKNOWN
    (the service may appear later)."""
    h = health_pb2_grpc.HealthStub(channel)
    stream = h.Watch(health_pb2.HealthCheckRequest(service="nope"), timeout=WAIT)
    first = next(stream)
    stream.cancel()
    assert first.status == SERVICE_UNKNOWN


def test_a_bad_health_request_is_invalid_argument(channel):
    bad = channel.unary_unary("/grpc.health.v1.Health/Check")
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, bad, b"\xff\xff\xff", timeout=WAIT)


def test_watch_sees_not_serving_when_the_server_drains():
    """SIGTERM: every Watch hears NOT_SERVING before its stream ends, so a load balancer
    stops sending new calls while the in-flight ones finish."""
    with tempfile.TemporaryDirectory(prefix="annals-test-") as d:
        s = Server(d).start()
        ch = grpc.insecure_channel(s.addr, options=[("grpc.use_local_subchannel_pool", 1)])
        try:
            h = health_pb2_grpc.HealthStub(ch)
            streams = [h.Watch(health_pb2.HealthCheckRequest(service=svc), timeout=WAIT * 3)
                       for svc in [""] + ANNALS_SERVICES]
            for st in streams:
                assert next(st).status == SERVING
            s.proc.send_signal(signal.SIGTERM)  # the API server only (scaled: the first)
            for st in streams:
                assert next(st).status == NOT_SERVING
                with pytest.raises(grpc.RpcError) as ei:
                    next(st)
                assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
            assert s.proc.wait(timeout=WAIT) == 0
        finally:
            ch.close()
            if s.proc and s.proc.poll() is not None:
                s.proc = None
                if SCALED:  # the other processes still run
                    for p in s.others:
                        p.send_signal(signal.SIGTERM)
                    for p in s.others:
                        p.wait(timeout=90)
                    s.others = []
            if s.proc or s.others:
                s.stop()


# ---------------------------------------------------------------- reflection

def reflect(channel, request, version="v1alpha"):
    """One ServerReflectionInfo exchange on `version`'s path (the messages are the same)."""
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    return list(call(iter([request]), timeout=WAIT))


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_lists_every_service(channel, version):
    [r] = reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""), version)
    names = {s.name for s in r.list_services_response.service}
    assert set(ANNALS_SERVICES) <= names
    assert {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_the_reflection_client_lists_the_services(channel):
    db = ProtoReflectionDescriptorDatabase(channel)
    assert set(ANNALS_SERVICES) <= set(db.get_services())


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_file_containing_symbol_and_its_imports(channel, version):
    [r] = reflect(channel, reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="annals.v1.LoggingQueryService"), version)
    files = [descriptor_pb2.FileDescriptorProto.FromString(b)
             for b in r.file_descriptor_response.file_descriptor_proto]
    assert files[0].name == "annals/v1/annals.proto"
    names = {f.name for f in files}
    assert set(files[0].dependency) <= names  # the imports come along
    services = {s.name: [m.name for m in s.method] for s in files[0].service}
    assert "TailLogEntries" in services["LoggingQueryService"]
    assert "WriteLogEntries" in services["LoggingCommandService"]


@pytest.mark.parametrize("symbol", ["annals.v1.LogEntry", "annals.v1.WriteLogEntriesRequest",
                                    "annals.v1.LoggingCommandService.WriteLogEntries",
                                    ".annals.v1.LogEntry"])
def test_file_containing_a_message_or_method(channel, symbol):
    [r] = reflect(channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
    first = descriptor_pb2.FileDescriptorProto.FromString(
        r.file_descriptor_response.file_descriptor_proto[0])
    assert first.name == "annals/v1/annals.proto"


def test_file_by_filename(channel):
    [r] = reflect(channel, reflection_pb2.ServerReflectionRequest(
        file_by_filename="google/protobuf/timestamp.proto"))
    f = descriptor_pb2.FileDescriptorProto.FromString(
        r.file_descriptor_response.file_descriptor_proto[0])
    assert f.name == "google/protobuf/timestamp.proto"
    assert [m.name for m in f.message_type] == ["Timestamp"]


@pytest.mark.parametrize("request_", [
    reflection_pb2.ServerReflectionRequest(file_containing_symbol="annals.v1.Nope"),
    reflection_pb2.ServerReflectionRequest(file_by_filename="nope.proto"),
    reflection_pb2.ServerReflectionRequest(file_containing_extension=reflection_pb2.ExtensionRequest(
        containing_type="annals.v1.LogEntry", extension_number=100)),
])
def test_unknown_things_answer_not_found_in_the_stream(channel, request_):
    [r] = reflect(channel, request_)
    assert r.WhichOneof("message_response") == "error_response"
    assert r.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert r.original_request == request_


def test_several_requests_on_one_stream(channel):
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    reqs = [reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_by_filename="annals/v1/annals.proto"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="nope")]
    got = list(call(iter(reqs), timeout=WAIT))
    assert [r.WhichOneof("message_response") for r in got] == [
        "list_services_response", "file_descriptor_response", "error_response"]
    assert [r.original_request for r in got] == reqs


def test_an_rpc_built_only_from_reflected_descriptors(server, channel, client):
    """What grpcurl does without the proto file: descriptors from reflection, messages made
    from them, a real call with the tenant's key (the annals services still need it)."""
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    cmd = pool.FindServiceByName("annals.v1.LoggingCommandService")
    qry = pool.FindServiceByName("annals.v1.LoggingQueryService")

    def rpc(service, name):
        m = service.FindMethodByName(name)
        req = message_factory.GetMessageClass(m.input_type)
        resp = message_factory.GetMessageClass(m.output_type)
        call = channel.unary_unary(f"/{service.full_name}/{name}",
                                   request_serializer=req.SerializeToString,
                                   response_deserializer=resp.FromString)
        return req, lambda r: call(r, metadata=client.md, timeout=WAIT)

    create_req, create = rpc(cmd, "CreateLog")
    log = create(create_req(labels={"via": "reflection"})).log
    assert log.labels["via"] == "reflection"

    write_req, write = rpc(cmd, "WriteLogEntries")
    entry_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("annals.v1.LogEntry"))
    write(write_req(log_id=log.id, entries=[entry_cls(text_payload="built by reflection",
                                                      insert_id="r-1")]))

    get_req, get = rpc(qry, "GetLog")
    list_req, list_ = rpc(qry, "ListLogEntries")

    def listed():
        return [e.text_payload for e in list_(list_req(log_id=log.id)).entries]
    if DISTRIBUTED:
        from helpers import eventually
        eventually(lambda: listed() == ["built by reflection"])
    assert listed() == ["built by reflection"]
    assert get(get_req(log_id=log.id)).log.id == log.id

    # Without the key the annals services refuse, reflection or not.
    with pytest.raises(grpc.RpcError) as ei:
        channel.unary_unary(f"/{qry.full_name}/GetLog",
                            request_serializer=get_req.SerializeToString)(
            get_req(log_id=log.id), timeout=WAIT)
    assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_text_that_is_not_utf8_is_invalid_argument(channel):
    """proto3 strings are UTF-8; the answer would echo the request."""
    bad_host = b"\x0a\x01\xff" + b"\x3a\x00"  # host = 0xff, list_services = ""
    call = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    with pytest.raises(grpc.RpcError) as ei:
        list(call(iter([bad_host]), timeout=WAIT))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "host" in ei.value.details()
    check = channel.unary_unary("/grpc.health.v1.Health/Check")
    err = expect_code(grpc.StatusCode.INVALID_ARGUMENT, check, b"\x0a\x02\xc3\x28", timeout=WAIT)
    assert "service" in err.details()


def test_a_bad_reflection_request_is_invalid_argument(channel):
    call = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    with pytest.raises(grpc.RpcError) as ei:
        list(call(iter([b"\xff\xff\xff"]), timeout=WAIT))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT

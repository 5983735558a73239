"""gRPC plumbing every process of the fabric shares: one server set-up (with its TLS and bearer
tokens, core/security.py), handlers and method paths taken from the .proto descriptors (never typed
by hand), the implementation name.

    server = await RpcServer.start("127.0.0.1:0", [handler(tpb.DESCRIPTOR.services_by_name[...], impl)],
                                   options, ServerSecurity.from_flags(auth_token_file="tokens"))
    call = unary_unary(channel, tpb.DESCRIPTOR.services_by_name["TrajectoryService"], "Stats")
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from importlib import metadata
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agentgym.core.security import ServerSecurity

log = logging.getLogger(__name__)

# Notice vanished peers: ping idle connections, drop ones that do not answer.
KEEPALIVE = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_pings_without_data", 0),
]


def implementation() -> str:
    """Implementation name and version, e.g. "agentgym-python 0.1.0" (reported by every service)."""
    try:
        return f"agentgym-python {metadata.version('agentgym')}"
    except metadata.PackageNotFoundError:
        return "agentgym-python"


def server_options(max_message_bytes: int, *, reuse_port: bool = False) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        *KEEPALIVE,
    ]


def _passthrough(data: bytes) -> bytes:
    return data


class _Unparseable:
    """Stands for request bytes that are not the method's message (grpc would answer UNKNOWN)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _parser(cls: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except DecodeError as exc:
            return _Unparseable(f"could not parse a {cls.DESCRIPTOR.name} from {len(data)} bytes: {exc}")

    return parse


def _refusing_garbage(behavior: Callable[..., Any]) -> Callable[..., Any] | None:
    """`behavior` (one request in), answering INVALID_ARGUMENT to bytes that did not parse; None for
    a behavior of a kind it cannot wrap (not async)."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Unparseable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            async with contextlib.aclosing(behavior(request, context)) as items:
                async for item in items:
                    yield item

        return stream
    if inspect.iscoroutinefunction(behavior):

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Unparseable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            return await behavior(request, context)

        return call
    return None


async def _parsed(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    """A request stream's messages; bytes that did not parse end the RPC with INVALID_ARGUMENT."""
    async for request in requests:
        if isinstance(request, _Unparseable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        yield request


def _refusing_garbage_stream(behavior: Callable[..., Any]) -> Callable[..., Any] | None:
    """`behavior` (a stream of requests in, async), ending the RPC with INVALID_ARGUMENT at the first
    message that did not parse; None for a behavior of a kind it cannot wrap."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            async with contextlib.aclosing(behavior(_parsed(requests, context), context)) as items:
                async for item in items:
                    yield item

        return stream
    if inspect.iscoroutinefunction(behavior):

        async def call(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            return await behavior(_parsed(requests, context), context)

        return call
    return None


_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def handler(
    service: ServiceDescriptor, methods: Mapping[str, Callable[..., Any]], *, raw: Iterable[str] = ()
) -> grpc.GenericRpcHandler:
    """A handler for every method of `service`, implemented by `methods[name]`. Methods named in
    `raw` take and give bytes (they parse requests themselves, to answer garbage in band)."""
    raw = frozenset(raw)
    missing = sorted(m.name for m in service.methods if m.name not in methods)
    if missing:
        raise TypeError(f"{service.full_name}: no implementation of {missing}")
    handlers = {}
    for m in service.methods:
        plain = m.name in raw
        behavior, parse = methods[m.name], _passthrough if plain else GetMessageClass(m.input_type).FromString
        # A request that does not parse answers INVALID_ARGUMENT, as a Session's garbage does.
        wrap = _refusing_garbage_stream if m.client_streaming else _refusing_garbage
        if not plain and (checked := wrap(behavior)):
            behavior, parse = checked, _parser(GetMessageClass(m.input_type))
        handlers[m.name] = _FACTORIES[(m.client_streaming, m.server_streaming)](
            behavior,
            request_deserializer=parse,
            response_serializer=_passthrough if plain else GetMessageClass(m.output_type).SerializeToString,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def method_path(service: ServiceDescriptor, name: str) -> str:
    return f"/{service.full_name}/{service.methods_by_name[name].name}"


def stub(
    channel: grpc.aio.Channel | grpc.Channel, service: ServiceDescriptor, name: str, *, raw: bool = False
) -> Any:
    """A callable for one method, typed from the descriptor (`raw=True`: bytes in)."""
    m = service.methods_by_name[name]
    make = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(m.client_streaming, m.server_streaming)]
    return make(
        method_path(service, name),
        request_serializer=_passthrough if raw else GetMessageClass(m.input_type).SerializeToString,
        response_deserializer=GetMessageClass(m.output_type).FromString,
    )


class RpcServer:
    """A grpc.aio server with our handlers, standard health checking and reflection; TLS and bearer
    tokens as `security` says (health stays open; reflection needs a token like everything else)."""

    def __init__(self, server: grpc.aio.Server, health_servicer: health.aio.HealthServicer, port: int,
                 services: list[str], security: ServerSecurity | None = None) -> None:  # fmt: skip
        self.server = server
        self.health = health_servicer
        self.port = port
        self.services = services
        self.security = security or ServerSecurity()

    @classmethod
    async def start(
        cls,
        address: str,
        handlers: list[tuple[ServiceDescriptor, grpc.GenericRpcHandler]],
        options: list[tuple[str, int]],
        security: ServerSecurity | None = None,
    ) -> RpcServer:
        """Bind `address` (port 0 picks one) and serve; OSError when it cannot bind, SecurityError
        (a ValueError) for an unsafe bind or an unreadable certificate or token file."""
        security = security or ServerSecurity()
        security.check(address.rpartition(":")[0])
        server = grpc.aio.server(options=options, interceptors=security.interceptors())
        server.add_generic_rpc_handlers(tuple(h for _, h in handlers))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names = [d.full_name for d, _ in handlers]
        reflection.enable_server_reflection((*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        credentials = security.credentials()
        try:
            port = (
                server.add_secure_port(address, credentials)
                if credentials
                else server.add_insecure_port(address)
            )
        except RuntimeError:
            port = 0
        if port == 0:
            raise OSError(
                f"could not bind {address}: the port is in use, or the host is not an address of this machine"
            )
        await server.start()
        for name in ("", *names):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        return cls(server, health_servicer, port, names, security)

    async def stop(self, grace_s: float | None) -> None:
        await self.server.stop(grace_s)

    async def not_serving(self) -> None:
        await self.health.enter_graceful_shutdown()


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

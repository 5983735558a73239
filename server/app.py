"""Build and run the gRPC server: EnvService plus health checking and reflection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from dataclasses import replace

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agentgym.server.config import ServerConfig
from agentgym.server.service import SERVICE_NAME, EnvService
from agentgym.v1 import env_pb2 as pb

log = logging.getLogger(__name__)


def _passthrough(data: bytes) -> bytes:
    return data


class Server:
    """A running env server. `await Server.start(config)`, later `await server.stop()`."""

    def __init__(
        self,
        config: ServerConfig,
        service: EnvService,
        grpc_server: grpc.aio.Server,
        health_servicer: health.aio.HealthServicer,
        port: int,
    ) -> None:
        self.config = config
        self.service = service
        self.grpc_server = grpc_server
        self.health = health_servicer
        self.port = port

    @property
    def address(self) -> str:
        return replace(self.config, port=self.port).address

    @classmethod
    async def start(cls, config: ServerConfig, reuse_port: bool = False) -> Server:
        service = EnvService(config)
        mb = config.max_message_bytes
        options = [
            ("grpc.max_receive_message_length", mb),
            ("grpc.max_send_message_length", mb),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            # Notice vanished clients: ping idle connections, drop ones that do not answer.
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.max_concurrent_streams", 1 << 20),
            # Core refuses streams the application has not picked up yet beyond these (1000 and
            # 3000 by default): a burst of thousands of creates must queue, not fail.
            ("grpc.server.max_pending_requests", 1 << 20),
            ("grpc.server.max_pending_requests_hard_limit", 1 << 20),
        ]
        server = grpc.aio.server(options=options)
        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "ListEnvs": grpc.unary_unary_rpc_method_handler(
                    service.list_envs,
                    request_deserializer=pb.ListEnvsRequest.FromString,
                    response_serializer=pb.ListEnvsResponse.SerializeToString,
                ),
                # Raw bytes both ways: the session parses requests itself, so bytes that are not a
                # SessionRequest get an in-band INVALID_ARGUMENT instead of a dead stream.
                "Session": grpc.stream_stream_rpc_method_handler(
                    service.session, request_deserializer=_passthrough, response_serializer=_passthrough
                ),
            },
        )
        server.add_generic_rpc_handlers((handler,))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            port = server.add_insecure_port(config.address)
        except RuntimeError:
            port = 0
        if port == 0:
            await service.close()
            raise OSError(
                f"could not bind {config.address}: the port is in use, or the host is not an address of this machine"
            )
        await server.start()
        service.start_background()
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "server started",
            extra={
                "address": replace(config, port=port).address,
                "envs": sorted(service.hosted),
                "max_episodes": config.max_episodes,
            },
        )
        return cls(config, service, server, health_servicer, port)

    async def stop(self, grace_s: float | None = None) -> None:
        """Graceful: health turns NOT_SERVING and creates are refused (UNAVAILABLE); live episodes
        get the grace period to finish; then the rest are ended, every env freed, and the port closed."""
        if grace_s is not None:
            self.service.config.grace_s = grace_s
        await self.health.enter_graceful_shutdown()
        await self.service.drain()
        await self.grpc_server.stop(0)
        await self.service.close()
        log.info("server stopped", extra={"address": self.address})

    async def wait(self) -> None:
        await self.grpc_server.wait_for_termination()


async def serve_forever(config: ServerConfig, reuse_port: bool = False) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully."""
    server = await Server.start(config, reuse_port=reuse_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info(
        "shutting down", extra={"grace_s": config.grace_s, "live_episodes": server.service.capacity.live}
    )
    await server.stop()


def _run_worker(config: ServerConfig, log_config: dict[str, object]) -> None:
    from agentgym.core.logs import configure_logging

    configure_logging(**log_config)  # type: ignore[arg-type]
    _run(config, reuse_port=True)


def _run(config: ServerConfig, reuse_port: bool) -> None:
    # The default event loop: uvloop measured no faster under grpc.aio here.
    asyncio.run(serve_forever(config, reuse_port=reuse_port))


def serve(config: ServerConfig, log_config: dict[str, object] | None = None) -> None:
    """Blocking entry point of `agentgym serve`. With `workers > 1`, that many processes share the
    port (SO_REUSEPORT), each with an even share of the episode limits."""
    config.validate()
    if config.workers == 1:
        _run(config, reuse_port=False)
        return
    n = config.workers
    share = replace(
        config,
        workers=1,
        max_episodes=max(1, config.max_episodes // n),
        max_episodes_per_env=None
        if config.max_episodes_per_env is None
        else max(1, config.max_episodes_per_env // n),
    )
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_run_worker, args=(share, log_config or {}), name=f"agentgym-serve-{i}")
        for i in range(n)
    ]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for p in procs:
        p.join()

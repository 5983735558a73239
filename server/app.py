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
from grpc_health.v1 import health

from agentgym.core.metrics import MetricsServer, start_metrics_server
from agentgym.core.rpc import RpcServer, handler
from agentgym.server.config import ServerConfig
from agentgym.server.service import EnvService
from agentgym.v1 import env_pb2 as pb

log = logging.getLogger(__name__)

_DESCRIPTOR = pb.DESCRIPTOR.services_by_name["EnvService"]


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
        self.metrics: MetricsServer | None = None  # the Prometheus exposition (metrics_port)

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
        # The one server set-up (core/rpc.py): health, reflection, TLS and bearer tokens. Session
        # takes and gives raw bytes: the session parses requests itself, so bytes that are not a
        # SessionRequest get an in-band INVALID_ARGUMENT instead of a dead stream.
        methods = {"ListEnvs": service.list_envs, "Session": service.session}
        try:
            rpc = await RpcServer.start(
                config.address, [(_DESCRIPTOR, handler(_DESCRIPTOR, methods, raw=["Session"]))], options,
                config.security,
            )  # fmt: skip
        except BaseException:
            await service.close()
            raise
        server, health_servicer, port = rpc.server, rpc.health, rpc.port
        metrics = None
        if config.metrics_port is not None:
            try:
                metrics = start_metrics_server(config.metrics_port, config.host)
            except OSError:
                await rpc.stop(0)
                await service.close()
                raise
        service.start_background()
        log.info(
            "server started",
            extra={
                "address": replace(config, port=port).address,
                "envs": sorted(service.hosted),
                "max_episodes": config.max_episodes,
                "security": rpc.security.describe(),
                "metrics_port": metrics.port if metrics else None,
            },
        )
        srv = cls(config, service, server, health_servicer, port)
        srv.metrics = metrics
        return srv

    async def stop(self, grace_s: float | None = None) -> None:
        """Graceful: health turns NOT_SERVING and creates are refused (UNAVAILABLE); live episodes
        get the grace period to finish; then the rest are ended, every env freed, and the port closed."""
        if grace_s is not None:
            self.service.config.grace_s = grace_s
        await self.health.enter_graceful_shutdown()
        await self.service.drain()
        await self.grpc_server.stop(0)
        await self.service.close()
        if self.metrics is not None:
            self.metrics.close()
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


def _worker_metrics_port(port: int | None, index: int) -> int | None:
    return port + index if port else port


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
        processes_per_host=config.processes_per_host * n,  # memory-derived limits: a share each
        max_episodes=max(1, config.max_episodes // n),
        max_episodes_per_env=None
        if config.max_episodes_per_env is None
        else max(1, config.max_episodes_per_env // n),
    )
    ctx = multiprocessing.get_context("spawn")
    # Each worker serves its own metrics on metrics_port + i (0: each a free port): simpler and
    # sturdier than prometheus_client's multiprocess mode (shared files, gauge merge modes).
    procs = [
        ctx.Process(
            target=_run_worker,
            args=(
                replace(share, metrics_port=_worker_metrics_port(config.metrics_port, i)),
                log_config or {},
            ),
            name=f"agentgym-serve-{i}",
        )
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

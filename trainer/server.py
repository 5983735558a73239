"""The trainer's gRPC server: TrajectoryService over a store, plus health checking and reflection.

    server = await TrainerServer.start(TrainerConfig(store="runs/store", port=0))
    ...                                   # server.port, server.store
    await server.stop()

`agentgym train serve` runs `serve(config)`: until SIGINT/SIGTERM, then a graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agentgym.trainer.service import SERVICE_NAME, IngestConfig, TrajectoryService
from agentgym.trainer.store import TrajectoryStore
from agentgym.v1 import trajectory_pb2 as tpb

log = logging.getLogger(__name__)

DEFAULT_PORT = 50060


@dataclass
class TrainerConfig:
    store: str | Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0 picks a free one
    ingest: IngestConfig = field(default_factory=IngestConfig)
    segment_bytes: int = 256 << 20
    # Records per group commit (one write + one fdatasync); 1 = one fsync per record (benchmarks).
    max_batch: int = 4096
    # On shutdown: seconds streams get to receive the acknowledgements of what was stored.
    grace_s: float = 5.0

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _passthrough(data: bytes) -> bytes:
    return data


class TrainerServer:
    def __init__(
        self,
        config: TrainerConfig,
        store: TrajectoryStore,
        service: TrajectoryService,
        grpc_server: grpc.aio.Server,
        health_servicer: health.aio.HealthServicer,
        port: int,
    ) -> None:
        self.config = config
        self.store = store
        self.service = service
        self.grpc_server = grpc_server
        self.health = health_servicer
        self.port = port

    @property
    def address(self) -> str:
        return replace(self.config, port=self.port).address

    @classmethod
    async def start(cls, config: TrainerConfig) -> TrainerServer:
        """Open the store (raises StoreError: not a store, locked, ...), then serve it."""
        store = TrajectoryStore.open(
            config.store, segment_bytes=config.segment_bytes, max_batch=config.max_batch
        )
        try:
            return await cls._serve(config, store)
        except BaseException:
            store.close()
            raise

    @classmethod
    async def _serve(cls, config: TrainerConfig, store: TrajectoryStore) -> TrainerServer:
        service = TrajectoryService(store, config.ingest)
        # gRPC's own limit sits above the in-band one, so an oversize trajectory is answered in band.
        limit = config.ingest.max_trajectory_bytes + (1 << 20)
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_time_ms", 10_000),
                ("grpc.keepalive_timeout_ms", 5_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.http2.max_pings_without_data", 0),
            ]
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                # Raw bytes in: the service parses requests itself (garbage gets an in-band error).
                "Push": grpc.stream_stream_rpc_method_handler(
                    service.push, request_deserializer=_passthrough, response_serializer=_passthrough
                ),
                "Stats": grpc.unary_unary_rpc_method_handler(
                    service.stats,
                    request_deserializer=tpb.StatsRequest.FromString,
                    response_serializer=tpb.StatsResponse.SerializeToString,
                ),
                "ListIds": grpc.unary_stream_rpc_method_handler(
                    service.list_ids,
                    request_deserializer=tpb.ListIdsRequest.FromString,
                    response_serializer=tpb.ListIdsResponse.SerializeToString,
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
            raise OSError(
                f"could not bind {config.address}: the port is in use, or the host is not an address of this machine"
            )
        await server.start()
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        srv = cls(config, store, service, server, health_servicer, port)
        log.info(
            "trainer serving",
            extra={"address": srv.address, "store": str(store.path), "trajectories": len(store)},
        )
        return srv

    async def stop(self, grace_s: float | None = None) -> None:
        """Graceful: health turns NOT_SERVING, new pushes are answered UNAVAILABLE, what was queued
        is written, streams get `grace_s` to receive their acknowledgements, then the store closes."""
        grace = self.config.grace_s if grace_s is None else grace_s
        await self.health.enter_graceful_shutdown()
        self.service.draining = True
        await self.store.flush()
        await self.grpc_server.stop(grace)
        await self.store.aclose()
        log.info("trainer stopped", extra={"address": self.address, "trajectories": len(self.store)})


async def serve_forever(config: TrainerConfig) -> None:
    server = await TrainerServer.start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_s": config.grace_s})
    await server.stop()


def serve(config: TrainerConfig) -> None:
    """Blocking entry point of `agentgym train serve`."""
    asyncio.run(serve_forever(config))

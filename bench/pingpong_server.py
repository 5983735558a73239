"""A raw grpc.aio bidi echo server: the transport's limit, for bench/fabric.py.

    python bench/pingpong_server.py PORT RESPONSE_BYTES

Answers every message on a stream with RESPONSE_BYTES bytes, with no parsing at all.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import grpc


async def main(port: int, size: int) -> None:
    payload = b"x" * size

    async def pingpong(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield payload

    server = grpc.aio.server(
        options=[
            ("grpc.server.max_pending_requests", 1 << 20),
            ("grpc.server.max_pending_requests_hard_limit", 1 << 20),
        ]
    )
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"PingPong": grpc.stream_stream_rpc_method_handler(pingpong)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))

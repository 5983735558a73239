"""Generated protobuf and gRPC stubs for the agentgym.v1 contract (`make proto` writes them)."""

try:
    from agentgym.v1 import env_pb2, env_pb2_grpc
except ImportError as exc:  # pragma: no cover - only without generated stubs
    raise ImportError(
        "agentgym.v1 stubs are missing or stale: run `make proto` in the agentgym checkout "
        f"(protoc output is not committed). Cause: {exc}"
    ) from exc

__all__ = ["env_pb2", "env_pb2_grpc"]

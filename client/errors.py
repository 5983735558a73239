"""Typed errors for everything a server can answer, mapped from gRPC status codes.

Catch `AgentGymError` for any of them, or a subclass for one case::

    try:
        async with client.episode("maze", task_id=99_999) as ep: ...
    except OutOfRange as e:
        print(e.message)
"""

from __future__ import annotations

import grpc


class AgentGymError(Exception):
    """An error answered by an env server (in band or as the stream's status)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    # True when the episode is over because of this error (env crash, timeout, shutdown, stream lost).
    ends_episode = False
    # True when retrying the same request elsewhere or later may succeed.
    retryable = False

    def __init__(self, message: str, *, address: str = "", episode_id: str = "") -> None:
        self.message = message
        self.address = address
        self.episode_id = episode_id
        where = f" [{address}{' ' + episode_id if episode_id else ''}]" if address else ""
        super().__init__(f"{self.code.name}: {message}{where}")


class InvalidArgument(AgentGymError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(AgentGymError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    ends_episode = True


class NotFound(AgentGymError):
    code = grpc.StatusCode.NOT_FOUND


class ResourceExhausted(AgentGymError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retryable = True


class FailedPrecondition(AgentGymError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(AgentGymError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Internal(AgentGymError):
    code = grpc.StatusCode.INTERNAL
    ends_episode = True


class Unavailable(AgentGymError):
    """The server is shutting down or cannot be reached."""

    code = grpc.StatusCode.UNAVAILABLE
    ends_episode = True
    retryable = True


class Cancelled(AgentGymError):
    code = grpc.StatusCode.CANCELLED
    ends_episode = True


class Unimplemented(AgentGymError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Unauthenticated(AgentGymError):
    """No bearer token, or one the server does not accept (docs/security.md: --token-file)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(AgentGymError):
    code = grpc.StatusCode.PERMISSION_DENIED


_BY_CODE: dict[grpc.StatusCode, type[AgentGymError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        ResourceExhausted,
        FailedPrecondition,
        OutOfRange,
        Internal,
        Unavailable,
        Cancelled,
        Unimplemented,
        Unauthenticated,
        PermissionDenied,
    )
}
_BY_NUMBER: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def error_for(
    code: grpc.StatusCode | int, message: str, *, address: str = "", episode_id: str = ""
) -> AgentGymError:
    """The typed exception for a status code (numeric google.rpc.Code or grpc.StatusCode)."""
    if isinstance(code, int):
        code = _BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
    if code == grpc.StatusCode.UNAVAILABLE and message.endswith("Socket closed"):
        # What gRPC says when TLS is refused without a reason it can tell the client.
        message += (
            " (if the server requires a client certificate, give --tls-cert/--tls-key; if it serves TLS, "
            "use grpcs://HOST:PORT; docs/security.md)"
        )
    cls = _BY_CODE.get(code)
    if cls is None:
        err = AgentGymError(message, address=address, episode_id=episode_id)
        err.code = code
        err.ends_episode = True
        return err
    return cls(message, address=address, episode_id=episode_id)


def from_rpc_error(exc: grpc.aio.AioRpcError, *, address: str = "", episode_id: str = "") -> AgentGymError:
    err = error_for(exc.code(), exc.details() or "", address=address, episode_id=episode_id)
    err.ends_episode = True  # a stream-level status always ends the stream
    return err

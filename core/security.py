"""Transport security for every process of the fabric: TLS and bearer tokens, one rule, one place.

Servers (the env server, the trainer, the hf policy server) take the same flags:

    --tls-cert PEM --tls-key PEM    serve TLS (gRPC: grpcs://, HTTP: https://)
    --tls-client-ca PEM             ... and require a client certificate signed by this CA (mutual TLS)
    --auth-token-file FILE          require `authorization: Bearer <token>` (gRPC metadata, HTTP header)
    --insecure                      allow a non-loopback address with neither (refused otherwise)

Clients take `--tls-ca PEM` (a private CA; default: the system's roots), `--tls-cert PEM --tls-key
PEM` (a client certificate, for mutual TLS) and `--token-file FILE`, defaulting to
$AGENTGYM_TLS_CA and $AGENTGYM_TOKEN_FILE. `grpcs://HOST:PORT` means TLS; `grpc://HOST:PORT` and
plain `HOST:PORT` mean plaintext; policy servers are `https://` or `http://` URLs.

A token file holds one token a line (blank lines and `#` comments are ignored). A server accepts
every token in its file; a client sends the first one in its. Both re-read the file when it
changes (checked at most once a second), so tokens rotate without a restart: add the new token to
the servers' files, switch the clients' files, then remove the old one. The health service
(grpc.health.v1.Health, HTTP /health) answers without a token, so load balancers and readiness
probes need none; everything else, reflection included, needs one. A call is checked before any
handler runs: a refused call creates nothing and stores nothing.

    server = await RpcServer.start(addr, handlers, options, ServerSecurity.from_flags(cert, key, None, tokens))
    channel = connect("grpcs://trainer:50060", ClientSecurity(ca="ca.pem", token_file="token"))
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import os
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from agentgym.core import metrics

log = logging.getLogger(__name__)

NO_TOKEN = "no bearer token: this server needs one (client flag --token-file)"
BAD_TOKEN = "bearer token not accepted"
# Services that answer without a token: readiness probes and load balancers carry none.
OPEN_SERVICES = ("/grpc.health.v1.Health/",)
# The HTTP policy server's equivalent.
OPEN_PATHS = frozenset({"/health"})

ENV_TOKEN_FILE = "AGENTGYM_TOKEN_FILE"
ENV_TLS_CA = "AGENTGYM_TLS_CA"


class SecurityError(ValueError):
    """A security setting that cannot work: a missing or unreadable file, flags that go together."""


class InsecureBindError(SecurityError):
    """A server asked to listen beyond loopback with neither TLS nor a token."""


# --- token files -------------------------------------------------------------------------------------
_WARNED: set[str] = set()


def parse_tokens(text: str, where: str) -> tuple[str, ...]:
    tokens = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # A token travels in an HTTP header and gRPC metadata: printable ASCII, no spaces.
        if not all(33 <= ord(c) <= 126 for c in line):
            raise SecurityError(f"{where}:{n}: a token is printable ASCII without spaces (one token a line)")
        tokens.append(line)
    return tuple(tokens)


class TokenFile:
    """Bearer tokens from a file, re-read when it changes (checked at most every `recheck_s`).

    Raises SecurityError at construction when the file cannot be read or holds no token. A later
    read that fails (the file is missing for a moment, a bad line) keeps the tokens already loaded
    and logs a warning; an emptied file accepts nothing."""

    def __init__(self, path: str | os.PathLike[str], *, recheck_s: float = 1.0) -> None:
        self.path = Path(path)
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = time.monotonic()
        try:
            st = self.path.stat()
            self._tokens = parse_tokens(self.path.read_text(), str(self.path))
        except OSError as exc:
            raise SecurityError(f"token file {self.path}: {exc.strerror or exc}") from None
        if not self._tokens:
            raise SecurityError(f"token file {self.path} holds no token (one a line; # starts a comment)")
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if st.st_mode & 0o077 and str(self.path) not in _WARNED:
            _WARNED.add(str(self.path))  # once per file: a server and its checks read it more than once
            log.warning("token file is readable by other users; chmod 600 it", extra={"path": str(self.path)})

    def tokens(self) -> tuple[str, ...]:
        now = time.monotonic()
        if now - self._checked >= self.recheck_s:
            with self._lock:
                if now - self._checked >= self.recheck_s:
                    self._checked = now
                    self._reload()
        return self._tokens

    def _reload(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp:
                return
            tokens = parse_tokens(self.path.read_text(), str(self.path))
        except (OSError, SecurityError) as exc:
            log.warning("token file unreadable; keeping the tokens loaded before",
                        extra={"path": str(self.path), "error": str(exc)})  # fmt: skip
            return
        self._tokens, self._stamp = tokens, stamp
        log.info("token file reloaded", extra={"path": str(self.path), "tokens": len(tokens)})

    def accepts(self, token: str) -> bool:
        candidate = token.encode()
        # Compare against every token, in constant time each, so timing tells nothing.
        ok = False
        for t in self.tokens():
            ok |= hmac.compare_digest(candidate, t.encode())
        return ok

    def first(self) -> str:
        """The token a client sends."""
        tokens = self.tokens()
        if not tokens:
            raise SecurityError(f"token file {self.path} holds no token")
        return tokens[0]


@functools.cache
def token_file(path: str) -> TokenFile:
    """One TokenFile per path in this process (clients share it; failures are not cached)."""
    return TokenFile(path)


def check_bearer(authorization: str | None, tokens: TokenFile) -> str | None:
    """None when `authorization` ("Bearer <token>") carries an accepted token, else why not."""
    if not authorization:
        return NO_TOKEN
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return NO_TOKEN
    return None if tokens.accepts(token.strip()) else BAD_TOKEN


def bearer_headers(token_file_path: str | None) -> dict[str, str]:
    """HTTP headers carrying the first token of `token_file_path` (none without a file)."""
    return {"Authorization": f"Bearer {token_file(token_file_path).first()}"} if token_file_path else {}


# --- TLS -----------------------------------------------------------------------------------------------
def _read(path: str, flag: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SecurityError(f"{flag} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in data:
        raise SecurityError(f"{flag} {path}: not a PEM file")
    return data


@dataclass(frozen=True)
class TlsConfig:
    """A server's certificate and key (PEM files), and the CA its clients' certificates must be
    signed by when mutual TLS is on (`client_ca`)."""

    cert: str
    key: str
    client_ca: str | None = None

    @classmethod
    def from_flags(cls, cert: str | None, key: str | None, client_ca: str | None = None) -> TlsConfig | None:
        if not cert and not key:
            if client_ca:
                raise SecurityError(
                    "--tls-client-ca needs --tls-cert and --tls-key (mutual TLS runs over TLS)"
                )
            return None
        if not (cert and key):
            raise SecurityError("--tls-cert and --tls-key go together: give both")
        return cls(cert, key, client_ca or None)

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        return (_read(self.cert, "--tls-cert"), _read(self.key, "--tls-key"),
                _read(self.client_ca, "--tls-client-ca") if self.client_ca else None)  # fmt: skip

    def ssl_context(self) -> ssl.SSLContext:
        """A server-side context (for aiohttp)."""
        self.read()  # the same clear errors as gRPC's path
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.cert, self.key)
            if self.client_ca:
                ctx.load_verify_locations(self.client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
        except ssl.SSLError as exc:
            raise SecurityError(f"--tls-cert {self.cert} / --tls-key {self.key}: {exc}") from None
        return ctx


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    cert, key, client_ca = tls.read()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def channel_credentials(
    ca: str | None, cert: str | None = None, key: str | None = None
) -> grpc.ChannelCredentials:
    """TLS credentials for a channel: `ca` (None: the system's roots) and a client certificate."""
    if bool(cert) != bool(key):
        raise SecurityError("--tls-cert and --tls-key go together: give both (a client certificate)")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "--tls-ca") if ca else None,
        private_key=_read(key, "--tls-key") if key else None,
        certificate_chain=_read(cert, "--tls-cert") if cert else None,
    )


# --- binding -------------------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or "" (every interface): not provably loopback, so treated as exposed


def require_safe_bind(host: str, tls: TlsConfig | None, token: str | None, insecure: bool) -> None:
    """Refuse to listen beyond loopback with neither TLS nor a token, unless `insecure`."""
    if tls is None and not token and not insecure and not is_loopback(host):
        raise InsecureBindError(
            f"refusing to listen on {host or 'every interface'} without TLS or a bearer token: anyone who "
            "can reach it could use it. Give --tls-cert/--tls-key and/or --auth-token-file (docs/security.md), "
            "or pass --insecure to serve it open anyway (a trusted private network)"
        )


@dataclass(frozen=True)
class ServerSecurity:
    """What a server requires of its callers (nothing by default)."""

    tls: TlsConfig | None = None
    token_file: str | None = None
    insecure: bool = False

    @classmethod
    def from_flags(cls, tls_cert: str | None = None, tls_key: str | None = None, tls_client_ca: str | None = None,
                   auth_token_file: str | None = None, insecure: bool = False) -> ServerSecurity:  # fmt: skip
        return cls(
            TlsConfig.from_flags(tls_cert, tls_key, tls_client_ca), auth_token_file or None, bool(insecure)
        )

    def check(self, host: str) -> None:
        """Fail before serving: an unsafe bind, an unreadable certificate or token file."""
        require_safe_bind(host, self.tls, self.token_file, self.insecure)
        if self.tls is not None:
            self.tls.read()
        if self.token_file:
            TokenFile(self.token_file)

    def tokens(self) -> TokenFile | None:
        return TokenFile(self.token_file) if self.token_file else None

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        tokens = self.tokens()
        return [AuthInterceptor(tokens)] if tokens is not None else []

    def credentials(self) -> grpc.ServerCredentials | None:
        return server_credentials(self.tls) if self.tls is not None else None

    def describe(self) -> str:
        parts = ["mutual TLS" if self.tls and self.tls.client_ca else "TLS" if self.tls else "plaintext"]
        parts.append("bearer token" if self.token_file else "no token")
        return ", ".join(parts)


# --- the gRPC server side ---------------------------------------------------------------------------
def _refusal(handler: grpc.RpcMethodHandler | None, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that answers UNAUTHENTICATED without reading a request."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    streaming = (handler.request_streaming, handler.response_streaming) if handler else (True, True)
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[streaming]
    # No deserializer: an unauthenticated request's bytes are never parsed.
    return make(refuse)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks `authorization: Bearer <token>` before any handler runs; the health service stays open."""

    def __init__(self, tokens: TokenFile) -> None:
        self.tokens = tokens
        self.refused = 0
        self._logged_at = -1e18

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if details.method.startswith(OPEN_SERVICES):
            return await continuation(details)
        authorization = None
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                authorization = value if isinstance(value, str) else value.decode(errors="replace")
                break
        why = check_bearer(authorization, self.tokens)
        handler = await continuation(details)
        if why is None:
            return handler
        self.refused += 1
        if details.method.startswith("/agentgym.v1.EnvService/"):  # an env server error, as Node counts it
            metrics.child(metrics.ERRORS, metrics.NO_EPISODE, "UNAUTHENTICATED").inc()
        now = time.monotonic()
        if now - self._logged_at > 10:  # at most one line per 10 s: a scan must not flood the log
            self._logged_at = now
            log.warning(
                "call refused", extra={"method": details.method, "reason": why, "refused": self.refused}
            )
        return _refusal(handler, why)


# --- the client side --------------------------------------------------------------------------------
def parse_address(address: str) -> tuple[str, bool]:
    """(gRPC target, TLS?) of `grpcs://HOST:PORT` (TLS), `grpc://HOST:PORT` or `HOST:PORT` (plaintext)."""
    address = address.strip()
    for scheme, tls in (("grpcs://", True), ("grpc://", False)):
        if address.lower().startswith(scheme):
            return address[len(scheme) :].rstrip("/"), tls
    return address, False


@dataclass(frozen=True)
class ClientSecurity:
    """How a client proves itself and checks servers: `ca` (PEM; None: the system's roots) for
    grpcs:// and https://, a client certificate (`cert`, `key`) for mutual TLS, and a bearer token
    (`token`, given literally, e.g. an API key from the environment; else the first in `token_file`)."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    token_file: str | None = None
    token: str | None = None

    @classmethod
    def from_env(cls) -> ClientSecurity:
        return cls(ca=os.environ.get(ENV_TLS_CA) or None, token_file=os.environ.get(ENV_TOKEN_FILE) or None)

    def check(self) -> ClientSecurity:
        """Fail early on missing files and flags that go together; returns self."""
        if bool(self.cert) != bool(self.key):
            raise SecurityError("--tls-cert and --tls-key go together: give both (a client certificate)")
        for path, flag in ((self.ca, "--tls-ca"), (self.cert, "--tls-cert"), (self.key, "--tls-key")):
            if path:
                _read(path, flag)
        if self.token_file and not self.token:
            token_file(self.token_file)
        return self

    def bearer(self) -> str | None:
        if self.token:
            return self.token
        return token_file(self.token_file).first() if self.token_file else None

    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        """gRPC call metadata carrying the token (None without one)."""
        token = self.bearer()
        return (("authorization", f"Bearer {token}"),) if token else None

    def headers(self) -> dict[str, str]:
        """HTTP headers carrying the token (none without one)."""
        token = self.bearer()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def credentials(self) -> grpc.ChannelCredentials:
        return channel_credentials(self.ca, self.cert, self.key)

    def ssl_context(self) -> ssl.SSLContext | None:
        """For https:// with a private CA or a client certificate (None: aiohttp's default checks)."""
        if not (self.ca or self.cert):
            return None
        ctx = ssl.create_default_context(cafile=self.ca)
        if self.cert and self.key:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx


def default_client() -> ClientSecurity:
    """Client settings from the environment ($AGENTGYM_TLS_CA, $AGENTGYM_TOKEN_FILE)."""
    return ClientSecurity.from_env()


class _Bearer:
    """Adds the bearer token to a call (read per call, so a rotated token file is used)."""

    def __init__(self, security: ClientSecurity) -> None:
        self.security = security

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *(self.security.metadata() or ()))
        return details._replace(metadata=metadata)  # type: ignore[attr-defined, no-any-return]


# One class per call kind: grpc.aio files an interceptor under the first kind it is an instance of.
class _BearerUnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)


class _BearerUnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)


class _BearerStreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._with_token(details), request_iterator)


class _BearerStreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._with_token(details), request_iterator)


_BEARERS = (_BearerUnaryUnary, _BearerUnaryStream, _BearerStreamUnary, _BearerStreamStream)


def connect(
    address: str,
    security: ClientSecurity | None = None,
    options: Sequence[tuple[str, Any]] | None = None,
    *,
    token_per_call: bool = True,
) -> grpc.aio.Channel:
    """A channel to `address` (grpcs://: TLS) whose calls carry the token, if there is one.
    `token_per_call=False` leaves the token to the caller (`security.metadata()` on each call): the
    env client's hot path, where an interceptor would add a queue hop to every message."""
    security = security or default_client()
    target, tls = parse_address(address)
    bearer = token_per_call and (security.token or security.token_file)
    interceptors = [make(security) for make in _BEARERS] if bearer else None
    if tls:
        return grpc.aio.secure_channel(
            target, security.credentials(), options=options, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)

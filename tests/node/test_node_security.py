"""The Node.js server's transport security, as the Python server's: bearer tokens checked before any
work (rotated without a restart), the health service open, TLS and mutual TLS, and no unprotected
service on a non-loopback address. Certificates are made here with the `openssl` CLI."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from agentgym.v1 import env_pb2 as pb
from tests.node.conftest import MAIN, NODE, NodeServer, requires_node

pytestmark = [
    requires_node,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl CLI is not installed"),
]

NO_TOKEN = "no bearer token: this server needs one (client flag --token-file)"
WRONG_TOKEN = "bearer token not accepted"
Metadata = tuple[tuple[str, str], ...]


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


# --- certificates ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Certs:
    ca: Path  # signs the server's and the client's certificates
    other_ca: Path  # an unrelated CA: trusting it must not be enough
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate signed by other_ca
    stranger_key: Path

    def read(self, name: str) -> bytes:
        path: Path = getattr(self, name)
        return path.read_bytes()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> None:
    # EC keys: fast to make, so the whole set costs well under a second of CPU.
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=agentgym test {name}",
        cwd=d,
    )  # fmt: skip


def _leaf(d: Path, name: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=agentgym test {name}",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("certs")
    _ca(d, "ca")
    _ca(d, "other_ca")
    server_ext = (
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )
    client_ext = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n"
    _leaf(d, "server", "ca", server_ext)
    _leaf(d, "client", "ca", client_ext)
    _leaf(d, "stranger", "other_ca", client_ext)
    return Certs(
        ca=d / "ca.pem",
        other_ca=d / "other_ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        stranger_cert=d / "stranger.pem",
        stranger_key=d / "stranger.key",
    )


# --- servers and calls ----------------------------------------------------------------------------
Serve = Callable[..., Awaitable[NodeServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """`await serve(*flags)`: a Node server hosting sokoban; stopped on teardown, which must be clean
    (exit 0). (conftest's start_node checks leaks over a plaintext, token-less channel, which these
    servers refuse; the tests here check live counts themselves.)"""
    servers: list[NodeServer] = []

    async def start(*args: str) -> NodeServer:
        srv = await asyncio.to_thread(NodeServer, ["--grace", "0", "--envs", "sokoban", *args])
        servers.append(srv)
        return srv

    yield start
    codes = [await asyncio.to_thread(srv.stop) for srv in servers]
    assert codes == [0] * len(servers), [srv.lines[-10:] for srv in servers]


def tls_channel(
    address: str, ca: Path, cert: Path | None = None, key: Path | None = None
) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    return grpc.aio.secure_channel(address, creds)


async def list_envs(channel: grpc.aio.Channel, metadata: Metadata = ()) -> pb.ListEnvsResponse:
    method = channel.unary_unary(
        "/agentgym.v1.EnvService/ListEnvs",
        request_serializer=pb.ListEnvsRequest.SerializeToString,
        response_deserializer=pb.ListEnvsResponse.FromString,
    )
    return await method(pb.ListEnvsRequest(), metadata=metadata, timeout=10)


async def live_episodes(channel: grpc.aio.Channel, metadata: Metadata) -> int:
    return (await list_envs(channel, metadata)).server.live_episodes


class Episode:
    """One Session stream, with whatever metadata the test gives it."""

    def __init__(self, channel: grpc.aio.Channel, metadata: Metadata = ()) -> None:
        method = channel.stream_stream(
            "/agentgym.v1.EnvService/Session",
            request_serializer=pb.SessionRequest.SerializeToString,
            response_deserializer=pb.SessionResponse.FromString,
        )
        self.call = method(metadata=metadata, timeout=30)
        self.next_id = 1

    async def ask(self, **kind: object) -> pb.SessionResponse:
        req_id = self.next_id
        self.next_id += 1
        await self.call.write(pb.SessionRequest(id=req_id, **kind))  # type: ignore[arg-type]
        resp = await self.call.read()
        assert resp is not grpc.aio.EOF, f"stream ended with {await self.call.code()}"
        assert resp.id == req_id
        return resp  # type: ignore[no-any-return]


async def refused(channel: grpc.aio.Channel, metadata: Metadata) -> tuple[grpc.StatusCode, str]:
    """Try to create a sokoban episode; the status the stream ends with (it must not get a response)."""
    ep = Episode(channel, metadata)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await ep.ask(create=pb.CreateRequest(env="sokoban", task_id=0))
    return info.value.code(), info.value.details() or ""


async def play_sokoban(channel: grpc.aio.Channel, metadata: Metadata, task_id: int = 0) -> pb.StepResult:
    """A whole episode, solved by the server's expert; the final result."""
    ep = Episode(channel, metadata)
    created = await ep.ask(create=pb.CreateRequest(env="sokoban", task_id=task_id))
    assert created.WhichOneof("kind") == "created", created
    result = created.created.initial
    while not (result.done or result.truncated):
        expert = await ep.ask(expert=pb.ExpertRequest())
        result = (await ep.ask(step=pb.StepRequest(action=expert.expert.action))).step
    await ep.ask(close=pb.CloseRequest())
    await ep.call.done_writing()
    assert await ep.call.code() == grpc.StatusCode.OK
    return result


def write_tokens(path: Path, text: str) -> None:
    """Replace the token file the way a rotation script would, and make sure its mtime moves even on a
    file system with coarse timestamps."""
    before = path.stat().st_mtime if path.exists() else 0.0
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.utime(tmp, (before + 2, before + 2))
    tmp.replace(path)


# --- bearer tokens --------------------------------------------------------------------------------
async def test_calls_without_the_right_token_are_refused_before_any_work(
    serve: Serve, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, "# the trainer's token\nright-token\n\n  second-token  \n")
    srv = await serve("--auth-token-file", str(tokens), "--log-level", "debug")
    async with grpc.aio.insecure_channel(srv.address) as channel:
        for metadata, message in [
            ((), NO_TOKEN),
            ((("authorization", "Basic cmlnaHQtdG9rZW4="),), NO_TOKEN),
            (bearer("wrong-token"), WRONG_TOKEN),
            (bearer("# the trainer's token"), WRONG_TOKEN),  # comments are not tokens
            (bearer(""), NO_TOKEN),
        ]:
            assert await refused(channel, metadata) == (grpc.StatusCode.UNAUTHENTICATED, message)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await list_envs(channel, metadata)
            assert (info.value.code(), info.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, message)
        # Nothing was created for the refused streams: no live episode, and no env was ever started.
        assert await live_episodes(channel, bearer("right-token")) == 0
        assert not [d for d in srv.logs() if d["event"] == "episode ended"]

        # The right tokens (either one; surrounding blanks are not part of a token) play whole episodes.
        assert (await play_sokoban(channel, bearer("right-token"), task_id=0)).success
        assert (await play_sokoban(channel, bearer("second-token"), task_id=5)).success
        assert await live_episodes(channel, bearer("second-token")) == 0
    refusals = [d for d in srv.logs() if d["event"] == "call refused"]
    assert len(refusals) == 10 and all("wrong-token" not in str(d) for d in refusals)


async def test_tokens_rotate_without_a_restart(serve: Serve, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, "old-token\n")
    srv = await serve("--auth-token-file", str(tokens))
    async with grpc.aio.insecure_channel(srv.address) as channel:
        assert len((await list_envs(channel, bearer("old-token"))).envs) == 1
        write_tokens(tokens, "# rotated\nnew-token\n")
        # The file is looked at no more than once a second: within ~1 s the new token works and the
        # old one is refused, by the same process.
        t0 = time.monotonic()
        while True:
            try:
                await list_envs(channel, bearer("new-token"))
                break
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
                assert time.monotonic() - t0 < 3.0, "the rotated token file was not picked up"
                await asyncio.sleep(0.1)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await list_envs(channel, bearer("old-token"))
        assert (info.value.code(), info.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, WRONG_TOKEN)
        assert (await play_sokoban(channel, bearer("new-token"))).success
    assert srv.proc.poll() is None  # the same process all along


async def test_health_is_open_and_reflection_needs_the_token(serve: Serve, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, "right-token\n")
    srv = await serve("--auth-token-file", str(tokens))
    async with grpc.aio.insecure_channel(srv.address) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        for service in ("", "agentgym.v1.EnvService"):
            reply = await check(health_pb2.HealthCheckRequest(service=service), timeout=10)  # no token
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

        reflect = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await reflect(iter([ask]), timeout=10).read()
        assert (info.value.code(), info.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, NO_TOKEN)
        reply = await reflect(iter([ask]), metadata=bearer("right-token"), timeout=10).read()
        names = {s.name for s in reply.list_services_response.service}  # type: ignore[union-attr]
        assert "agentgym.v1.EnvService" in names


@pytest.mark.parametrize(
    ("text", "problem"),
    [(None, "cannot read"), ("# only a comment\n\n", "no tokens")],
)
def test_a_token_file_that_gives_no_token_stops_the_start(
    tmp_path: Path, text: str | None, problem: str
) -> None:
    tokens = tmp_path / "tokens"
    if text is not None:
        tokens.write_text(text)
    assert NODE is not None
    proc = subprocess.run(
        [NODE, str(MAIN), "--port", "0", "--envs", "sokoban", "--auth-token-file", str(tokens)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert problem in proc.stderr and str(tokens) in proc.stderr, proc.stderr


# --- TLS ------------------------------------------------------------------------------------------
async def test_tls_with_the_right_ca_works_and_anything_else_is_unavailable(
    serve: Serve, certs: Certs
) -> None:
    srv = await serve("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key))
    async with tls_channel(srv.address, certs.ca) as channel:
        assert (await live_episodes(channel, ())) == 0
        assert (await play_sokoban(channel, ())).success
    # An unrelated CA: the server's certificate is not trusted, so no connection.
    async with tls_channel(srv.address, certs.other_ca) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await list_envs(channel)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    # Plaintext to a TLS port: no connection either.
    async with grpc.aio.insecure_channel(srv.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await list_envs(channel)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_needs_a_client_certificate_from_the_ca(
    serve: Serve, certs: Certs, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, "right-token\n")
    srv = await serve(
        "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
        "--tls-client-ca", str(certs.ca), "--auth-token-file", str(tokens),
    )  # fmt: skip
    for cert, key in [(None, None), (certs.stranger_cert, certs.stranger_key)]:
        async with tls_channel(srv.address, certs.ca, cert, key) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await list_envs(channel, bearer("right-token"))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, cert
    async with tls_channel(srv.address, certs.ca, certs.client_cert, certs.client_key) as channel:
        # TLS and the token are both checked: a good certificate does not replace the token.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await list_envs(channel)
        assert (info.value.code(), info.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, NO_TOKEN)
        assert (await play_sokoban(channel, bearer("right-token"))).success
        assert await live_episodes(channel, bearer("right-token")) == 0


def test_tls_flags_must_come_together(certs: Certs) -> None:
    assert NODE is not None
    for flags, message in [
        (["--tls-cert", str(certs.server_cert)], "--tls-key"),
        (["--tls-key", str(certs.server_key)], "--tls-cert"),
        (["--tls-client-ca", str(certs.ca)], "--tls-cert"),
    ]:
        proc = subprocess.run(
            [NODE, str(MAIN), "--port", "0", "--envs", "sokoban", *flags],
            capture_output=True,
            text=True,
            timeout=30,
        )
        # The first line is the error (the usage, which names every flag, follows it).
        assert proc.returncode != 0 and message in proc.stderr.splitlines()[0], (flags, proc.stderr)


# --- where it may listen --------------------------------------------------------------------------
# 192.0.2.1 is TEST-NET-1 (RFC 5737): not this machine's, so even a server that got past the check
# could not listen there, and nothing is ever served on a public address by this test.
@pytest.mark.parametrize("host", ["192.0.2.1", "0.0.0.0", "::"])
def test_non_loopback_host_without_protection_refuses_to_start(host: str, tmp_path: Path) -> None:
    assert NODE is not None

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [NODE, str(MAIN), "--port", "0", "--envs", "sokoban", "--host", host, *flags],
            capture_output=True,
            text=True,
            timeout=30,
        )

    proc = run()
    assert proc.returncode != 0
    assert "--insecure" in proc.stderr and "--auth-token-file" in proc.stderr, proc.stderr
    assert "server started" not in proc.stderr
    if host != "192.0.2.1":
        return  # the rest would listen on every interface if it got past the check
    # --insecure, or a token, gets past the check: the bind itself is what fails on this address.
    tokens = tmp_path / "tokens"
    tokens.write_text("right-token\n")
    for flags in (["--insecure"], ["--auth-token-file", str(tokens)]):
        proc = run(*flags)
        assert proc.returncode != 0 and "could not bind" in proc.stderr, (flags, proc.stderr)
        assert "--insecure" not in proc.stderr


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
async def test_loopback_hosts_need_no_protection(serve: Serve, host: str) -> None:
    srv = await serve("--host", host)
    assert srv.port > 0
    async with grpc.aio.insecure_channel(f"localhost:{srv.port}") as channel:
        assert (await live_episodes(channel, ())) == 0

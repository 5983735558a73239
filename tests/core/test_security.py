"""core/security.py on real files and real sockets: token files and their rotation, the bind rule,
addresses, client settings, and the gRPC interceptor on both sides.

`make_pki` (also used by tests/server/test_security.py) makes a small PKI with the `openssl`
command at test time: a CA, a server certificate for 127.0.0.1/localhost, an expired one, a
client certificate, and a second, unrelated CA.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentgym.core.rpc import RpcServer, handler, server_options, stub
from agentgym.core.security import (
    BAD_TOKEN,
    NO_TOKEN,
    ClientSecurity,
    InsecureBindError,
    SecurityError,
    ServerSecurity,
    TlsConfig,
    TokenFile,
    check_bearer,
    connect,
    is_loopback,
    parse_address,
    require_safe_bind,
)
from agentgym.v1 import trajectory_pb2 as tpb

# --- a PKI made at test time ---------------------------------------------------------------------
_OPENSSL_CNF = """
[req]
distinguished_name = dn
prompt = no
[dn]
CN = agentgym-test
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class Pki:
    """PEM files: CA certificates, and each leaf's certificate with its key."""

    ca: str
    other_ca: str  # unrelated to everything else
    server: str  # for 127.0.0.1 and localhost, signed by `ca`
    server_key: str
    expired: str  # the same, expired yesterday
    expired_key: str
    client: str  # a client certificate signed by `ca`
    client_key: str


def make_pki(folder: Path) -> Pki:
    """A CA, an unrelated CA, and server, expired-server and client certificates (see Pki)."""
    folder.mkdir(parents=True, exist_ok=True)
    cnf = folder / "openssl.cnf"
    cnf.write_text(_OPENSSL_CNF)
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-config", str(cnf), "-extensions", "ca_ext", *new_key,
                "-keyout", str(folder / f"{ca}.key"), "-out", str(folder / f"{ca}.pem"), "-days", "2",
                "-subj", f"/CN=agentgym test {ca}")  # fmt: skip
    # days -1: not valid after yesterday, so expired now.
    leaves = (
        ("server", "server_ext", "2", 1),
        ("expired", "server_ext", "-1", 2),
        ("client", "client_ext", "2", 3),
    )
    for name, ext, days, serial in leaves:
        openssl("req", "-new", "-config", str(cnf), *new_key, "-keyout", str(folder / f"{name}.key"),
                "-out", str(folder / f"{name}.csr"), "-subj", "/CN=localhost")  # fmt: skip
        openssl("x509", "-req", "-in", str(folder / f"{name}.csr"), "-CA", str(folder / "ca.pem"),
                "-CAkey", str(folder / "ca.key"), "-set_serial", str(serial), "-days", days,
                "-extfile", str(cnf), "-extensions", ext, "-out", str(folder / f"{name}.pem"))  # fmt: skip
    files = {f"{n}{suffix}": str(folder / f"{n}.{ext}") for n in ("server", "expired", "client")
             for suffix, ext in (("", "pem"), ("_key", "key"))}  # fmt: skip
    return Pki(ca=str(folder / "ca.pem"), other_ca=str(folder / "other-ca.pem"), **files)


def write_tokens(path: Path, *tokens: str) -> str:
    path.write_text("# bearer tokens, one a line\n" + "".join(f"{t}\n" for t in tokens))
    path.chmod(0o600)
    return str(path)


def touch_later(path: Path) -> None:
    """Make sure a rewrite is seen as a change even on a coarse-mtime filesystem."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


# --- token files ----------------------------------------------------------------------------------
def test_token_file_reads_tokens_and_skips_comments(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# a comment\n\n  alpha  \n# beta\ngamma\n")
    path.chmod(0o600)
    tokens = TokenFile(path)
    assert tokens.tokens() == ("alpha", "gamma")
    assert tokens.first() == "alpha"
    assert tokens.accepts("gamma") and not tokens.accepts("beta") and not tokens.accepts("")


def test_token_file_rotation_is_seen_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    write_tokens(path, "old")
    tokens = TokenFile(path, recheck_s=0.05)
    assert tokens.accepts("old")
    write_tokens(path, "new")
    touch_later(path)
    time.sleep(0.1)
    assert tokens.accepts("new") and not tokens.accepts("old")


def test_token_file_is_rechecked_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    write_tokens(path, "old")
    tokens = TokenFile(path, recheck_s=60)
    write_tokens(path, "new")
    touch_later(path)
    assert tokens.accepts("old")  # not re-read yet: no stat per call


def test_a_bad_rewrite_keeps_the_tokens_already_loaded(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    write_tokens(path, "good")
    tokens = TokenFile(path, recheck_s=0.01)
    path.write_text("two words\n")
    touch_later(path)
    time.sleep(0.05)
    assert tokens.accepts("good")
    path.unlink()
    time.sleep(0.05)
    assert tokens.accepts("good")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        ("# only a comment\n\n", "holds no token"),
        ("has space\n", "printable ASCII without spaces"),
    ],
)
def test_token_file_errors_are_clear(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "tokens"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SecurityError, match=message):
        TokenFile(path)


def test_check_bearer(tmp_path: Path) -> None:
    tokens = TokenFile(write_tokens(tmp_path / "tokens", "s3cret"))
    assert check_bearer("Bearer s3cret", tokens) is None
    assert check_bearer("bearer s3cret", tokens) is None
    assert check_bearer(None, tokens) == NO_TOKEN
    assert check_bearer("", tokens) == NO_TOKEN
    assert check_bearer("Basic s3cret", tokens) == NO_TOKEN
    assert check_bearer("Bearer nope", tokens) == BAD_TOKEN


# --- binding, addresses, settings -------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_binds_need_nothing(host: str) -> None:
    assert is_loopback(host)
    require_safe_bind(host, None, None, insecure=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.1.2.3", "myhost"])
def test_exposed_binds_need_tls_or_a_token_or_insecure(host: str, tmp_path: Path) -> None:
    with pytest.raises(InsecureBindError, match="--insecure"):
        require_safe_bind(host, None, None, insecure=False)
    require_safe_bind(host, None, "tokens", insecure=False)
    require_safe_bind(host, TlsConfig("c.pem", "k.pem"), None, insecure=False)
    require_safe_bind(host, None, None, insecure=True)


def test_parse_address() -> None:
    assert parse_address("grpcs://h:1") == ("h:1", True)
    assert parse_address("GRPCS://h:1/") == ("h:1", True)
    assert parse_address("grpc://h:1") == ("h:1", False)
    assert parse_address("h:1") == ("h:1", False)
    assert parse_address("[::1]:5") == ("[::1]:5", False)


def test_settings_that_cannot_work_are_refused_with_the_flag_named(tmp_path: Path) -> None:
    with pytest.raises(SecurityError, match="--tls-cert and --tls-key go together"):
        TlsConfig.from_flags("c.pem", None)
    with pytest.raises(SecurityError, match="--tls-client-ca needs --tls-cert"):
        TlsConfig.from_flags(None, None, "ca.pem")
    assert TlsConfig.from_flags(None, None) is None
    with pytest.raises(SecurityError, match="--tls-cert and --tls-key go together"):
        ClientSecurity(cert="c.pem").check()
    with pytest.raises(SecurityError, match=r"--tls-ca .*missing\.pem"):
        ClientSecurity(ca=str(tmp_path / "missing.pem")).check()
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(SecurityError, match="not a PEM file"):
        ServerSecurity.from_flags(str(tmp_path / "junk.pem"), str(tmp_path / "junk.pem")).check("127.0.0.1")
    with pytest.raises(SecurityError, match="token file"):
        ServerSecurity.from_flags(auth_token_file=str(tmp_path / "missing")).check("127.0.0.1")


def test_client_token_and_headers(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    write_tokens(path, "first", "second")
    sec = ClientSecurity(token_file=str(path))
    assert sec.metadata() == (("authorization", "Bearer first"),)
    assert sec.headers() == {"Authorization": "Bearer first"}
    assert ClientSecurity(token="literal", token_file=str(path)).bearer() == "literal"
    assert ClientSecurity().metadata() is None and ClientSecurity().headers() == {}


def test_client_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTGYM_TOKEN_FILE", "/run/t")
    monkeypatch.setenv("AGENTGYM_TLS_CA", "/run/ca.pem")
    assert ClientSecurity.from_env() == ClientSecurity(ca="/run/ca.pem", token_file="/run/t")


# --- the interceptor, both sides, on a real server -------------------------------------------------------
STORE = tpb.DESCRIPTOR.services_by_name["TrajectoryService"]


class _Store:
    """TrajectoryService with only Stats doing anything: counts the calls that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    async def stats(self, request: tpb.StatsRequest, context: grpc.aio.ServicerContext) -> tpb.StatsResponse:
        self.calls += 1
        return tpb.StatsResponse(trajectories=7)

    async def unused(self, *args: object) -> None:
        raise AssertionError("not called")

    def methods(self) -> dict[str, object]:
        return {m.name: self.stats if m.name == "Stats" else self.unused for m in STORE.methods}


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[tuple[RpcServer, _Store, Path]]:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, "s3cret")
    impl = _Store()
    server = await RpcServer.start(
        "127.0.0.1:0",
        [(STORE, handler(STORE, impl.methods()))],  # type: ignore[arg-type]
        server_options(1 << 20),
        ServerSecurity(token_file=str(tokens)),
    )
    yield server, impl, tokens
    await server.stop(0)


async def test_rpc_server_refuses_calls_without_the_token_before_the_handler(
    guarded: tuple[RpcServer, _Store, Path], tmp_path: Path
) -> None:
    server, impl, tokens = guarded
    address = f"127.0.0.1:{server.port}"
    wrong = write_tokens(tmp_path / "wrong", "guess")
    for security, message in ((ClientSecurity(), NO_TOKEN), (ClientSecurity(token_file=wrong), BAD_TOKEN)):
        async with connect(address, security) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub(channel, STORE, "Stats")(tpb.StatsRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.value.details() == message
    assert impl.calls == 0
    async with connect(address, ClientSecurity(token_file=str(tokens))) as channel:
        reply = await stub(channel, STORE, "Stats")(tpb.StatsRequest(), timeout=5)
        # Health answers without a token: the channel's token is not what lets it through.
    async with connect(address, ClientSecurity()) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.trajectories == 7 and impl.calls == 1
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_rpc_server_refuses_an_exposed_bind_before_listening() -> None:
    with pytest.raises(InsecureBindError, match="--insecure"):
        await RpcServer.start("0.0.0.0:0", [], server_options(1 << 20), ServerSecurity())

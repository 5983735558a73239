"""TLS and bearer tokens on every server of the fabric, over real sockets with certificates made at
test time (tests/core/test_security.py's make_pki): the env server, the trainer, the hf policy
server, the CLI's refusal to expose a server unprotected, and a secured fleet end to end (a rollout
worker playing the trainer's work on secured env and policy servers)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agentgym.client.envclient import EnvClient
from agentgym.client.errors import AgentGymError, PermissionDenied, Unauthenticated, Unavailable, error_for
from agentgym.client.policies.base import PolicyError, Sampling
from agentgym.client.policies.hf import HFPolicy
from agentgym.client.policies.hf_server import PolicyServer
from agentgym.client.react import EpisodeSpec, run_episode
from agentgym.client.worker import RolloutWorker
from agentgym.core.envinfo import list_envs
from agentgym.core.security import BAD_TOKEN, NO_TOKEN, ClientSecurity, ServerSecurity, connect
from agentgym.core.weights import WeightsError, load_weights
from agentgym.trainer.server import TrainerConfig, TrainerServer
from agentgym.v1 import trainer_pb2 as rpb
from agentgym.v1 import trajectory_pb2 as tpb
from tests.conftest import StartServer, wait_for
from tests.core.test_security import Pki, make_pki, touch_later, write_tokens
from tests.test_cli import AGENTGYM
from tests.trainer.helpers import trajectory

SAMPLING = Sampling(temperature=1.0, max_new_tokens=16)
# The CLI's environment: none of the caller's security defaults, a wide table.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("AGENTGYM_TLS") and k != "AGENTGYM_TOKEN_FILE"}
ENV["COLUMNS"] = "200"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    """Token files: the server's ("server", accepting s3cret), a client's right one and a wrong one."""
    return {
        "server": write_tokens(tmp_path / "server-tokens", "s3cret"),
        "right": write_tokens(tmp_path / "right", "s3cret"),
        "wrong": write_tokens(tmp_path / "wrong", "guess"),
    }


async def play(address: str, security: ClientSecurity) -> bool:
    """One maze episode with the expert; its success."""
    async with EnvClient(address, security=security, connect_timeout_s=5) as client:
        async with client.episode("maze", 0) as ep:
            while not ep.over:
                result = await ep.step(await ep.expert())
    return result.success


# --- the env server: bearer tokens --------------------------------------------------------------------
async def test_env_server_refuses_missing_and_wrong_tokens_and_creates_nothing(
    start_server: StartServer, tokens: dict[str, str]
) -> None:
    srv = await start_server(envs=["maze"], auth_token_file=tokens["server"])
    address = f"127.0.0.1:{srv.port}"
    for security, message in (
        (ClientSecurity(), NO_TOKEN),
        (ClientSecurity(token_file=tokens["wrong"]), BAD_TOKEN),
    ):
        with pytest.raises(Unauthenticated) as err:
            await play(address, security)
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED and err.value.message == message
        with pytest.raises(Unauthenticated):
            async with EnvClient(address, security=security) as client:
                await client.server_status()
        assert srv.service.capacity.live == 0
    assert await play(address, ClientSecurity(token_file=tokens["right"]))


async def test_env_server_token_rotation_needs_no_restart(
    start_server: StartServer, tmp_path: Path, tokens: dict[str, str]
) -> None:
    server_file = Path(tokens["server"])
    srv = await start_server(envs=["maze"], auth_token_file=str(server_file))
    address = f"127.0.0.1:{srv.port}"
    old = ClientSecurity(token_file=tokens["right"])
    new = ClientSecurity(token_file=write_tokens(tmp_path / "new", "n3w-token"))
    assert await play(address, old)
    write_tokens(server_file, "n3w-token")
    touch_later(server_file)
    await asyncio.sleep(1.2)  # the server re-checks its file at most once a second
    with pytest.raises(Unauthenticated, match=BAD_TOKEN):
        await play(address, old)
    assert await play(address, new)


async def test_health_is_open_and_reflection_needs_the_token(
    start_server: StartServer, tokens: dict[str, str]
) -> None:
    srv = await start_server(envs=["maze"], auth_token_file=tokens["server"])
    address = f"127.0.0.1:{srv.port}"
    listing = reflection_pb2.ServerReflectionRequest(list_services="")

    async def services(security: ClientSecurity) -> list[str]:
        async with connect(address, security) as channel:
            call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([listing]), timeout=5
            )
            return [s.name async for r in call for s in r.list_services_response.service]

    async with connect(address, ClientSecurity()) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await services(ClientSecurity())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "agentgym.v1.EnvService" in await services(ClientSecurity(token_file=tokens["right"]))


# --- the env server: TLS ------------------------------------------------------------------------------------
async def test_tls_with_the_right_ca_works(
    start_server: StartServer, pki: Pki, tokens: dict[str, str]
) -> None:
    srv = await start_server(envs=["maze"], tls_cert=pki.server, tls_key=pki.server_key,
                             auth_token_file=tokens["server"])  # fmt: skip
    assert await play(f"grpcs://127.0.0.1:{srv.port}", ClientSecurity(ca=pki.ca, token_file=tokens["right"]))
    # localhost is in the certificate too; a plaintext client gets no answer from a TLS port.
    assert await play(f"grpcs://localhost:{srv.port}", ClientSecurity(ca=pki.ca, token_file=tokens["right"]))
    with pytest.raises(Unavailable):
        await play(f"127.0.0.1:{srv.port}", ClientSecurity(token_file=tokens["right"]))
    assert srv.service.capacity.live == 0


@pytest.mark.parametrize(
    "case", ["wrong CA", "expired certificate", "mutual TLS without a client certificate"]
)
async def test_tls_failures_are_unavailable_and_name_the_certificate(
    start_server: StartServer, pki: Pki, case: str
) -> None:
    cert, key, client_ca, security = pki.server, pki.server_key, None, ClientSecurity(ca=pki.ca)
    if case == "wrong CA":
        security = ClientSecurity(ca=pki.other_ca)
    elif case == "expired certificate":
        cert, key = pki.expired, pki.expired_key
    else:
        client_ca = pki.ca
    srv = await start_server(envs=["maze"], tls_cert=cert, tls_key=key, tls_client_ca=client_ca)
    with pytest.raises(Unavailable) as err:
        await play(f"grpcs://127.0.0.1:{srv.port}", security)
    text = err.value.message.lower()
    if case == "mutual TLS without a client certificate":  # the server hangs up; the client says what to try
        assert "client certificate" in text and "--tls-cert" in text, err.value.message
    else:
        assert "certificate_verify_failed" in text and "tls" in text, err.value.message
    if case == "expired certificate":
        assert "expired" in text, err.value.message
    assert srv.service.capacity.live == 0


async def test_mutual_tls_with_a_client_certificate_works(start_server: StartServer, pki: Pki) -> None:
    srv = await start_server(envs=["maze"], tls_cert=pki.server, tls_key=pki.server_key, tls_client_ca=pki.ca)
    security = ClientSecurity(ca=pki.ca, cert=pki.client, key=pki.client_key)
    assert await play(f"grpcs://127.0.0.1:{srv.port}", security)


# --- the trainer --------------------------------------------------------------------------------------------------
async def test_trainer_push_without_a_token_is_refused_and_nothing_is_stored(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    config = TrainerConfig(dir=tmp_path / "t", port=0, security=ServerSecurity(token_file=tokens["server"]))
    trainer = await TrainerServer.start(config)
    try:
        request = tpb.PushRequest(seq=1, trajectory=trajectory(1).to_proto()).SerializeToString()
        for security in (ClientSecurity(), ClientSecurity(token_file=tokens["wrong"])):
            async with connect(trainer.address, security) as channel:
                call = channel.stream_stream("/agentgym.v1.TrajectoryService/Push")()
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call.write(request)
                    await call.done_writing()
                    await call.read()
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert len(trainer.store) == 0 and trainer.store.stats().trajectories == 0
        async with connect(trainer.address, ClientSecurity(token_file=tokens["right"])) as channel:
            call = channel.stream_stream("/agentgym.v1.TrajectoryService/Push")()
            await call.write(request)
            reply = tpb.PushResponse.FromString(await call.read())
            await call.done_writing()
        assert reply.WhichOneof("result") == "stored" and len(trainer.store) == 1
    finally:
        await trainer.stop(0)


# --- the hf policy server ---------------------------------------------------------------------------------------------
@pytest.fixture
async def hf(tiny_model: str) -> AsyncIterator[HFPolicy]:
    policy = HFPolicy(tiny_model, SAMPLING, max_batch=8)
    await policy.start()
    yield policy
    await policy.close()


async def test_hf_policy_server_needs_the_token_on_every_route_but_health(
    hf: HFPolicy, tokens: dict[str, str]
) -> None:
    server = PolicyServer(hf, security=ServerSecurity(token_file=tokens["server"]))
    port = await server.start()
    url = f"http://127.0.0.1:{port}"
    body = {"input_ids": [1, 2, 3], "sampling_params": {"max_new_tokens": 2}}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/generate", json=body) as r:
                assert r.status == 401 and (await r.json())["error"]["message"] == NO_TOKEN
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
            async with http.post(
                f"{url}/generate", json=body, headers={"Authorization": "Bearer guess"}
            ) as r:
                assert r.status == 401 and (await r.json())["error"]["message"] == BAD_TOKEN
            for path in ("/model_info", "/v1/models"):
                async with http.get(url + path) as r:
                    assert r.status == 401, path
            assert not server.requests  # refused before any body was read
            async with http.get(f"{url}/health") as r:
                assert r.status == 200
            async with http.post(
                f"{url}/generate", json=body, headers={"Authorization": "Bearer s3cret"}
            ) as r:
                assert r.status == 200 and len((await r.json())["output_ids"]) >= 1
    finally:
        await server.stop()


async def test_sglang_policy_with_token_file_plays_against_a_server_started_with_a_token(
    start_server: StartServer, hf: HFPolicy, tokens: dict[str, str]
) -> None:
    """The hf server with --auth-token-file stands in for SGLang with --api-key (same header, same
    401): the CLI's --token-file reaches the sglang policy, and an episode plays."""
    from agentgym.client.cli import build_parser
    from agentgym.client.cli.common import policy_from_args

    env = await start_server(envs=["maze"])
    server = PolicyServer(hf, strict=True, security=ServerSecurity(token_file=tokens["server"]))
    url = f"http://127.0.0.1:{await server.start()}"
    try:
        common = [
            "rollout",
            "--out",
            "unused.jsonl",
            "--policy",
            "sglang",
            "--policy-url",
            url,
            "--max-new-tokens",
            "8",
        ]
        without = policy_from_args(build_parser().parse_args(common))
        with pytest.raises(PolicyError, match="HTTP 401"):
            await without.start()
        await without.close()
        policy = policy_from_args(build_parser().parse_args([*common, "--token-file", tokens["right"]]))
        await policy.start()
        try:
            async with EnvClient(f"127.0.0.1:{env.port}") as client:
                record = await run_episode(client, policy, EpisodeSpec("maze", 0), max_rounds=2)
        finally:
            await policy.close()
        assert record.rounds and record.input_ids
        assert any("input_ids" in b for b in server.requests)
    finally:
        await server.stop()


# --- a secured fleet, end to end -----------------------------------------------------------------------------------
async def test_a_secured_fleet_plays_the_trainers_work_end_to_end(
    start_server: StartServer, hf: HFPolicy, tiny_model: str, pki: Pki, tmp_path: Path, tokens: dict[str, str]
) -> None:
    """Env server, policy server and trainer all with TLS and a token; the trainer's jobs' calls
    (ListEnvs, weight loads) and a rollout worker (the trainer's Work and Push, the env server, the
    policy server) all connect with one ClientSecurity."""
    tls = dict(tls_cert=pki.server, tls_key=pki.server_key)
    env = await start_server(envs=["maze"], auth_token_file=tokens["server"], **tls)
    policy_server = PolicyServer(
        hf, security=ServerSecurity.from_flags(**tls, auth_token_file=tokens["server"])
    )
    policy_url = f"https://127.0.0.1:{await policy_server.start()}"
    client = ClientSecurity(ca=pki.ca, token_file=tokens["right"])
    config = TrainerConfig(dir=tmp_path / "t", port=0, run_jobs=False, client=client,
                           security=ServerSecurity.from_flags(**tls, auth_token_file=tokens["server"]))  # fmt: skip
    trainer = await TrainerServer.start(config)
    env_address = f"grpcs://127.0.0.1:{env.port}"
    stop = asyncio.Event()
    worker = RolloutWorker(f"grpcs://127.0.0.1:{trainer.port}", name="secured", security=client)
    task = asyncio.create_task(worker.run(stop))
    try:
        # The job side: what a job asks of the servers, with the trainer's client settings.
        assert "maze" in await list_envs([env_address], security=trainer.jobs.client)
        with pytest.raises(ConnectionError, match="UNAUTHENTICATED"):
            await list_envs([env_address], security=ClientSecurity(ca=pki.ca))
        await load_weights([policy_url], tiny_model, "v1", security=trainer.jobs.client)
        assert hf.weight_version == "v1"
        with pytest.raises(WeightsError, match="HTTP 401"):
            await load_weights([policy_url], tiny_model, "v2", retries=0, security=ClientSecurity(ca=pki.ca))
        # The worker side: an exploration item, whose trajectories stream back to the trainer.
        item = rpb.WorkItem(job_id="job-x", purpose="explore", iteration=0, policy_urls=[policy_url],
                            env_servers=[env_address], temperature=1.0, max_new_tokens=8, max_steps=2,
                            episodes=[rpb.WorkEpisode(env="maze", task_id=i) for i in range(2)])  # fmt: skip
        (done,) = await asyncio.wait_for(trainer.work.run([item]), 120)
        assert not done.error and len(done.results) == 2 and not any(r.error for r in done.results), done
        assert await wait_for(lambda: len(trainer.store) == 2, 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await trainer.stop(0)
        await policy_server.stop()


# --- the CLI ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--envs", "maze"],
        ["trainer", "serve", "--dir", "{tmp}/trainer"],
        ["policy", "serve", "--backend", "hf", "--model", "{tmp}/no-model"],
    ],
    ids=["env server", "trainer", "hf policy server"],
)
async def test_an_exposed_server_without_tls_or_token_refuses_to_start(
    argv: list[str], tmp_path: Path
) -> None:
    """0.0.0.0 is only named here, never listened on: each refuses before binding."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--host", "0.0.0.0", "--port", "0"]
    proc = await asyncio.create_subprocess_exec(AGENTGYM, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=ENV)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode not in (0, None), out
    message = err.decode()
    assert "--insecure" in message and "0.0.0.0" in message and "Traceback" not in message, message
    assert not (tmp_path / "trainer").exists()  # refused before the store was created


async def test_cli_client_flags_reach_a_secured_server(
    start_server: StartServer, pki: Pki, tokens: dict[str, str]
) -> None:
    srv = await start_server(envs=["maze"], tls_cert=pki.server, tls_key=pki.server_key,
                             auth_token_file=tokens["server"])  # fmt: skip

    async def envs(*flags: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            AGENTGYM, "envs", "--server", f"grpcs://127.0.0.1:{srv.port}", *flags,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=ENV,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode or 0, out.decode()

    code, out = await envs("--tls-ca", pki.ca, "--token-file", tokens["right"])
    assert code == 0 and "maze" in out, out
    code, out = await envs("--tls-ca", pki.ca)
    assert code != 0 and "UNAUTHENTICATED" in out and "--token-file" in out, out


def test_security_errors_name_the_flag_and_exit_cleanly() -> None:
    out = subprocess.run([AGENTGYM, "envs", "--server", "127.0.0.1:1", "--tls-cert", "c.pem"],
                         capture_output=True, text=True, timeout=120, env=ENV)  # fmt: skip
    assert out.returncode != 0 and "--tls-cert and --tls-key go together" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_errors_map_unauthenticated() -> None:
    err = error_for(grpc.StatusCode.UNAUTHENTICATED, NO_TOKEN)
    assert isinstance(err, Unauthenticated) and isinstance(err, AgentGymError) and not err.retryable
    assert isinstance(error_for(grpc.StatusCode.PERMISSION_DENIED, "no"), PermissionDenied)

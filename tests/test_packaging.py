"""The package builds as a wheel that carries every part of the namespace and the generated stubs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_the_whole_namespace(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)  # fmt: skip
    (wheel,) = tmp_path.glob("agentgym-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "agentgym/v1/env.proto", "agentgym/v1/env_pb2.py", "agentgym/v1/env_pb2_grpc.py",
        "agentgym/v1/trajectory.proto", "agentgym/v1/trajectory_pb2.py", "agentgym/v1/trajectory_pb2_grpc.py",
        "agentgym/v1/trainer.proto", "agentgym/v1/trainer_pb2.py", "agentgym/v1/trainer_pb2_grpc.py",
        "agentgym/server/app.py", "agentgym/server/worker.py", "agentgym/client/envclient.py",
        "agentgym/client/cli/__init__.py", "agentgym/client/cli/trainer.py", "agentgym/envs/maze.py",
        "agentgym/envs/textcraft/env.py", "agentgym/core/__init__.py", "agentgym/core/trajectory.py",
        "agentgym/core/chat.py", "agentgym/core/rpc.py", "agentgym/trainer/server.py", "agentgym/trainer/store.py",
        "agentgym/client/view/server.py", "agentgym/client/view/static/index.html",
        "agentgym/client/view/static/app.js", "agentgym/client/view/static/app.css",
    ):  # fmt: skip
        assert required in names, f"{required} missing from {wheel.name}"
    assert not any(n.startswith("tests/") for n in names)
    # Installed on its own (dependencies come from this environment), it imports from the wheel.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
    )
    code = (
        "import agentgym.envs.maze as m, agentgym.v1.env_pb2 as pb, agentgym.core.trajectory as t, "
        "agentgym.v1.trainer_pb2 as rpb; print(m.__file__); print(pb.EnvSpec.DESCRIPTOR.full_name); "
        "print(t.__file__); print(rpb.DESCRIPTOR.services_by_name['TrainerService'].full_name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    )
    path, name, core, service = out.stdout.split()
    assert path.startswith(str(target)) and name == "agentgym.v1.EnvSpec"
    assert core.startswith(str(target)) and service == "agentgym.v1.TrainerService"


def test_stubs_are_fresh() -> None:
    """The generated stubs match the .protos (they are not committed; `make proto` rewrites them)."""
    protos = sorted((ROOT / "protos/agentgym/v1").glob("*.proto"))
    assert {p.stem for p in protos} >= {"env", "trajectory", "trainer"}
    for proto in protos:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            stub = proto.with_name(proto.stem + suffix)
            assert stub.exists() and stub.stat().st_mtime >= proto.stat().st_mtime, (
                f"run `make proto`: {stub.name} is older than {proto.name}"
            )

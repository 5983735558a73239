"""`agentgym policy`: serve a policy model over HTTP, or make a tiny one to try things with.

agentgym policy init-tiny runs/tiny                       # a small random model + tokenizer, no download
agentgym policy serve --backend hf --model runs/tiny      # SGLang's API on CPU, backed by transformers
agentgym policy serve --backend sglang --model Qwen/...   # a real SGLang server (GPU host, `pip install agentgym[sglang]`)

Security (docs/security.md): hf takes --tls-cert/--tls-key (https://), --tls-client-ca (mutual
TLS) and --auth-token-file (every route but /health needs `Authorization: Bearer <token>`); sglang
takes --auth-token-file (SGLang's --api-key, set to the file's first token) and TLS flags of its
own after `--`. A non-loopback --host needs TLS or a token, or --insecure.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import urllib.request

from agentgym.client.cli.common import add_server_security_args, server_security
from agentgym.core.security import SecurityError, TokenFile, require_safe_bind


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="serve a policy model, or create a tiny one", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    s = verbs.add_parser("serve", help="run a policy server with SGLang's HTTP API")
    s.add_argument("--backend", choices=["hf", "sglang"], default="hf")
    s.add_argument("--model", required=True,
                   help="model directory, hub id (sglang), or init:tiny|mini|small (hf: a from-scratch model)")  # fmt: skip
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=30000)
    s.add_argument("--strict", action="store_true", help="hf: refuse request fields SGLang does not define")
    s.add_argument("--metrics-port", type=int, default=None,
                   help="hf: serve Prometheus metrics at http://HOST:N/metrics, a port of their own (0: a free "
                   "one; docs/metrics.md); sglang serves its own /metrics on --port with: -- --enable-metrics")  # fmt: skip
    add_server_security_args(s)
    s.add_argument(
        "extra",
        nargs=argparse.REMAINDER,
        help="sglang: further arguments for sglang.launch_server (after --)",
    )
    s.set_defaults(func=serve)
    t = verbs.add_parser("init-tiny", help="build a tiny random model and tokenizer (CPU tests, demos)")
    t.add_argument("out", help="directory to write")
    t.add_argument("--size", choices=["tiny", "mini", "small"], default="tiny")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=init_tiny)


def init_tiny(args: argparse.Namespace) -> int:
    from agentgym.trainer.tiny import save

    path = save(args.out, args.size, args.seed)
    print(f"saved a {args.size} model and tokenizer to {path}")
    return 0


def serve(args: argparse.Namespace) -> int:
    if args.metrics_port is not None:
        from agentgym.core.metrics import check_port

        if args.backend != "hf":
            raise SystemExit("agentgym policy serve: --metrics-port is for --backend hf; SGLang serves its "
                             "own /metrics on --port when given: -- --enable-metrics")  # fmt: skip
        try:
            check_port(args.metrics_port)
        except ValueError as exc:
            raise SystemExit(f"agentgym policy serve: {exc}") from None
    security = server_security(args)
    if args.backend == "hf":
        from agentgym.client.policies.hf_server import serve_hf

        try:
            security.check(args.host)  # before a model is built or loaded
        except SecurityError as exc:
            raise SystemExit(f"agentgym policy serve: {exc}") from None

        if args.model.startswith("init:"):  # a from-scratch model, as `--base init:SIZE` builds it
            import tempfile

            from agentgym.trainer.tiny import save

            args.model = str(save(tempfile.mkdtemp(prefix="agentgym-init-"), args.model[5:], 0))

        try:
            run = serve_hf(args.model, args.host, args.port, strict=args.strict, metrics_port=args.metrics_port,
                           security=security)  # fmt: skip
            asyncio.run(run)
        except KeyboardInterrupt:
            pass
        except OSError as exc:  # a port in use
            raise SystemExit(f"agentgym policy serve: {exc}") from None
        return 0
    return _serve_sglang(args)


def _serve_sglang(args: argparse.Namespace) -> int:
    try:
        import sglang  # noqa: F401
    except ImportError:
        print("SGLang is not installed here. On a GPU host: pip install 'agentgym[sglang]' (it brings its own CUDA torch).",
              file=sys.stderr)  # fmt: skip
        return 2
    extra = [a for a in args.extra if a != "--"]
    if args.tls_cert or args.tls_key or args.tls_client_ca:
        raise SystemExit("agentgym policy serve: --tls-* is for --backend hf; give SGLang its own TLS flags after "
                         "`--` (see `python -m sglang.launch_server --help`), or put a TLS proxy in front of it")  # fmt: skip
    token = None
    try:
        if args.auth_token_file:
            # SGLang takes one key: the file's first token (no rotation without a restart).
            token = TokenFile(args.auth_token_file).first()
            extra += ["--api-key", token]
        # TLS flags passed through to SGLang count as TLS for the bind check.
        tls_passed = any(a.startswith("--ssl-certfile") for a in extra)
        require_safe_bind(args.host, None, token, bool(args.insecure) or tls_passed)
    except SecurityError as exc:
        raise SystemExit(f"agentgym policy serve: {exc}") from None
    cmd = [
        sys.executable,
        "-m",
        "sglang.launch_server",
        "--model-path",
        args.model,
        "--host",
        args.host,
        "--port",
        str(args.port),
        *extra,
    ]
    print("starting:", " ".join("***" if token and a == token else a for a in cmd), flush=True)
    proc = subprocess.Popen(cmd)
    url = f"http://{args.host}:{args.port}/health"
    try:
        while proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        print(f"SGLang is serving {args.model} at http://{args.host}:{args.port}", flush=True)
                        break
            except OSError:
                time.sleep(2)
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()

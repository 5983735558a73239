"""A stand-in SGLang server for benchmarks: answers /generate after a fixed delay with a fixed reply.

    python bench/fake_sglang.py PORT MODEL_DIR DELAY_S [JITTER]

The reply is "Thought: ... Action: move up" tokenized with MODEL_DIR's tokenizer, in SGLang's JSON
shape, so the client does all of its real work (HTTP, token bookkeeping) and the policy costs
nothing but time.
"""

from __future__ import annotations

import asyncio
import random
import sys

from aiohttp import web
from transformers import AutoTokenizer


def main(port: int, model: str, delay_s: float, jitter: float) -> None:
    rng = random.Random(0)
    tok = AutoTokenizer.from_pretrained(model)
    ids = tok("Thought:\nI will go up.\n\nAction:\nmove up", add_special_tokens=False)["input_ids"] + [
        tok.eos_token_id
    ]
    reply = {
        "text": "",
        "output_ids": ids,
        "meta_info": {
            "id": "x",
            "finish_reason": {"type": "stop", "matched": ids[-1]},
            "prompt_tokens": 0,
            "completion_tokens": len(ids),
            "weight_version": "bench",
            "output_token_logprobs": [[-0.1, i, None] for i in ids],
        },
    }

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="")

    async def model_info(request: web.Request) -> web.Response:
        return web.json_response({"model_path": model, "tokenizer_path": model, "weight_version": "bench"})

    async def generate(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(delay_s * rng.uniform(1 - jitter, 1 + jitter))
        ids = body["input_ids"]
        return web.json_response([reply] * len(ids) if ids and isinstance(ids[0], list) else reply)

    app = web.Application(client_max_size=1 << 26)
    app.add_routes(
        [web.get("/health", health), web.get("/model_info", model_info), web.post("/generate", generate)]
    )
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)

"""Tiny causal LMs built from a config, with a tokenizer trained here: no download anywhere.

They exist for CPU tests and demonstrations: the same code paths (chat template, generation,
token-exact conversations, SFT, checkpoints) as a 7B model, in megabytes.

    python -m agentgym.trainer.tiny --out runs/tiny          # or: agentgym policy init-tiny runs/tiny

The tokenizer is a byte-level BPE (any text encodes) trained on the built-in envs' own text:
instructions, observations and expert replies in the ReAct format. The chat template is ChatML,
whose end-of-turn token is the EOS.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|im_start|>", "<|im_end|>"]


@dataclass(frozen=True)
class TinySize:
    hidden: int
    layers: int
    heads: int
    vocab: int
    max_positions: int = 8192


SIZES = {
    # ~0.4M parameters: unit tests.
    "tiny": TinySize(hidden=64, layers=2, heads=4, vocab=2048),
    # ~1M parameters: the CPU demonstration (learns Maze in minutes).
    "mini": TinySize(hidden=128, layers=4, heads=4, vocab=2048),
    # ~5M parameters: demonstrations with more time.
    "small": TinySize(hidden=256, layers=4, heads=8, vocab=4096),
}


def corpus(
    envs: tuple[str, ...] = ("maze", "wordle", "textcraft"), episodes_per_env: int = 40
) -> Iterator[str]:
    """Text the tokenizer learns from: each env's instruction and expert episodes, ReAct-formatted."""
    from agentgym.core.chat import ACK
    from agentgym.envs import registry

    yield ACK
    for name in envs:
        env = registry.make(name)
        yield env.instruction
        for task_id in range(0, env.task_count, max(1, env.task_count // episodes_per_env)):
            env.rng.seed(task_id)
            out = env.reset(task_id, task_id, {})
            yield out.observation
            for _ in range(env.max_rounds):
                action = env.expert_action()
                yield f"Thought:\nI will {action}.\n\nAction:\n{action}"
                out = env.step(action)
                yield out.observation
                if out.done:
                    break


def build_tokenizer(vocab_size: int):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>")
    hf.chat_template = CHAT_TEMPLATE
    return hf


def build(size: str = "tiny", seed: int = 0):  # type: ignore[no-untyped-def]
    """(model, tokenizer) with random weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = SIZES[size]
    tokenizer = build_tokenizer(spec.vocab)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.hidden * 4,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def save(out: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Build and save a tiny model directory that `from_pretrained` (hf policy, trainer, SGLang) loads."""
    out = Path(out)
    model, tokenizer = build(size, seed)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "agentgym_tiny.json").write_text(
        json.dumps({"size": size, "seed": seed, **asdict(SIZES[size])}, indent=2)
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = save(args.out, args.size, args.seed)
    print(f"saved a {args.size} model to {path}")


if __name__ == "__main__":
    main()

"""Behaviour cloning: supervised fine-tuning of a causal LM on agent trajectories.

    agentgym train bc --model Qwen/Qwen2.5-0.5B-Instruct --data runs/expert.jsonl --out runs/bc
    torchrun --nproc-per-node 8 $(which agentgym) train bc --model ... --data ... --out ... [--fsdp]

Reading top to bottom: load the tokenizer and model; turn trajectories into token ids with loss
on agent turns only (trainer/data.py); make length-bucketed batches under a token budget; then a
plain loop of forward, backward, step with warmup+cosine learning rate, gradient accumulation and
clipping, logging and checkpoints. bf16 autocast and optional gradient checkpointing on GPU;
DDP (or FSDP with --fsdp) under torchrun; the same code trains a tiny model on CPU.

Checkpoints are Hugging Face model directories (weights, config, tokenizer, chat template), so
the `hf` policy loads them and SGLang serves them; `trainer_state.pt` beside each holds what a
resumed run needs (optimizer, schedule, position in the data).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentgym.core.chat import ChatTokens, eos_token_ids
from agentgym.core.trajectory import ReadReport
from agentgym.trainer import dist as distributed
from agentgym.trainer.data import (
    DataError,
    Example,
    Source,
    batches,
    collate,
    load_trajectories,
    tokenize_all,
)
from agentgym.trainer.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class BCConfig:
    data: list[str | dict[str, Any]]  # trajectory files, folders of them, stores; or Source dicts
    out: str  # run folder: checkpoints/, final/, metrics.jsonl, result.json
    model: str | None = None  # a model directory or hub id to fine-tune; or `init`
    init: str | None = None  # "tiny" | "mini" | "small": a Llama built from a config, from scratch
    query: dict[str, Any] = field(default_factory=dict)  # Query.of filter for plain `data` paths
    strict: bool = False  # refuse (DataError) a bad record in a file instead of skipping it
    epochs: float = 1.0  # passes over the data (fractions allowed)
    lr: float = 1e-5  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.1  # the cosine schedule ends at lr * this
    warmup_ratio: float = 0.03  # share of the steps spent warming up linearly
    weight_decay: float = 0.0  # on matrices only (not norms or biases)
    max_length: int = 4096  # tokens per example (longer ones are cut)
    max_tokens: int = 16384  # padded tokens per micro-batch per device
    grad_accum: int = 1  # micro-batches per optimizer step
    grad_clip: float = 1.0  # global gradient-norm clip (0: none)
    bf16: bool | None = None  # bf16 autocast; None: on when training on CUDA
    gradient_checkpointing: bool = False  # trade compute for activation memory
    fsdp: bool = False  # shard the model (FSDP2) instead of DDP under torchrun
    save_every: int = 0  # steps between checkpoints (0: only at the end); a rerun resumes from the last
    keep_checkpoints: int = 2  # newest step checkpoints kept on disk
    log_every: int = 10  # steps between metrics lines
    seed: int = 0  # model init, data order and dropout
    resume: bool = True  # continue from the newest checkpoint in `out`
    progress: bool = True  # a progress bar on the terminal
    tensorboard: bool = False  # also log to TensorBoard under `out`
    wandb_project: str | None = None  # also log to Weights & Biases
    peak_tflops: float | None = None  # per device, for MFU; None: guessed from the GPU name
    device: str | None = None  # None: cuda when available (the local rank's GPU), else cpu
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, recorded in metrics


@dataclass
class BCResult:
    final: Path
    steps: int
    first_loss: float
    last_loss: float
    tokens_per_s: float
    mfu: float | None
    data_stats: dict[str, int]


def train(cfg: BCConfig, on_step: Callable[[int, int, float], None] | None = None) -> BCResult:
    """Train as `cfg` says; `on_step(step, total_steps, loss)` after every optimizer step."""
    import torch

    d = distributed.setup(cfg.device)
    try:
        return _train(cfg, d, torch, on_step)
    finally:
        distributed.teardown(d)


def _train(
    cfg: BCConfig, d: distributed.Dist, torch: Any, on_step: Callable[[int, int, float], None] | None
) -> BCResult:
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    cuda = d.device.startswith("cuda")
    bf16 = cfg.bf16 if cfg.bf16 is not None else cuda
    resume_from = _latest_checkpoint(out) if cfg.resume else None

    # --- model and tokenizer -------------------------------------------------------------------
    model, tokenizer = load_model(cfg.model, cfg.init, cfg.seed, resume_from)
    chat = ChatTokens(tokenizer, eos_token_ids(model, tokenizer))
    model.to(d.device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    n_params = sum(p.numel() for p in model.parameters())

    # --- data -------------------------------------------------------------------------------------
    read = ReadReport()
    sources = [Source.of(item, cfg.query) for item in cfg.data]
    records = load_trajectories(sources, strict=cfg.strict, report=read)
    examples, stats = tokenize_all(records, chat, chat.fingerprint, cfg.max_length)
    # The order trajectories reached the store depends on timing; the order they are trained in
    # must not (a run is reproducible from its seed): sort by key, then shuffle with the seed.
    examples.sort(key=lambda e: e.source)
    stats["skipped"] = len(read.skipped)
    if read.skipped and d.main:
        log.warning("bad training records skipped", extra={"summary": read.summary()})
    if not examples:
        raise DataError(
            f"no training examples in {cfg.data} (records: {stats['records']}, without agent turns to learn: {stats['no_targets']})"
        )
    if d.main:
        log.info("training data", extra={"stats": stats, "sources": cfg.data})
    per_epoch = _epoch_batches(examples, cfg, d, epoch=0)
    steps_per_epoch = max(1, len(per_epoch) // cfg.grad_accum)
    total_steps = max(1, math.ceil(steps_per_epoch * cfg.epochs))

    # --- distributed wrapping, optimizer, schedule -------------------------------------------------
    if d.enabled:
        model = wrap(model, cfg, d, torch)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
        fused=cuda,
    )
    warmup = int(total_steps * cfg.warmup_ratio)

    def lr_at(step: int) -> float:
        if step < warmup:
            return cfg.lr * (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return cfg.lr * (
            cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        )

    step, micro_done, epoch, position = 0, 0, 0, 0
    if resume_from is not None:
        state = torch.load(resume_from / "trainer_state.pt", map_location="cpu", weights_only=False)
        load_optimizer(model, optimizer, state, resume_from, sharded=cfg.fsdp and d.enabled)
        step, micro_done, epoch, position = (
            state["step"],
            state["micro_done"],
            state["epoch"],
            state["position"],
        )
        torch.set_rng_state(state["torch_rng"])
        if d.main:
            log.info("resumed", extra={"checkpoint": str(resume_from), "step": step})

    metrics = Metrics(
        out,
        enabled=d.main,
        tensorboard=cfg.tensorboard,
        wandb_project=cfg.wandb_project,
        run_name=out.name,
        config=asdict(cfg),
    )
    peak = cfg.peak_tflops or peak_tflops(torch, d.device)
    progress = _progress(cfg.progress and d.main, total_steps, step)
    model.train()
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if bf16 and cuda else nullcontext()
    first_loss = last_loss = float("nan")
    tokens_seen, t_start = 0, time.perf_counter()
    batch_list = _epoch_batches(examples, cfg, d, epoch) if epoch else per_epoch
    window_loss, window_targets = 0.0, 0.0
    with progress:
        task = progress.add_task("bc", total=total_steps, completed=step, loss="-", tps="-")
        while step < total_steps:
            # One optimizer step: `grad_accum` micro-batches, loss averaged over every target token
            # of the window on every rank.
            micro = []
            for _ in range(cfg.grad_accum):
                if position >= len(batch_list):
                    epoch += 1
                    position = 0
                    batch_list = _epoch_batches(examples, cfg, d, epoch)
                micro.append(batch_list[position])
                position += 1
                micro_done += 1
            local_targets = float(sum(e.targets for b in micro for e in b))
            global_targets = distributed.all_reduce_sum(d, local_targets, d.device)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for i, batch in enumerate(micro):
                tensors = {k: v.to(d.device) for k, v in collate(batch, tokenizer.pad_token_id).items()}
                sync = (
                    nullcontext() if (not d.enabled or cfg.fsdp or i == len(micro) - 1) else model.no_sync()
                )
                with sync, autocast:
                    logits = model(
                        input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"]
                    ).logits
                    loss_sum = torch.nn.functional.cross_entropy(
                        logits[:, :-1].flatten(0, 1).float(),
                        tensors["labels"][:, 1:].flatten(),
                        ignore_index=-100,
                        reduction="sum",
                    )
                    # DDP averages gradients over ranks; scale so the result is the global mean.
                    loss = loss_sum * d.world / max(1.0, global_targets)
                    loss.backward()
                step_loss += float(loss_sum.detach())
                tokens_seen += int(tensors["attention_mask"].sum())
            grad_norm = (
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
            )
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            optimizer.step()
            step += 1
            step_loss = distributed.all_reduce_sum(d, step_loss, d.device) / max(1.0, global_targets)
            first_loss = step_loss if math.isnan(first_loss) else first_loss
            last_loss = step_loss
            window_loss += step_loss
            window_targets += 1
            elapsed = time.perf_counter() - t_start
            tps = tokens_seen * d.world / max(elapsed, 1e-9)
            progress.update(task, completed=step, loss=f"{step_loss:.4f}", tps=f"{tps:,.0f}")
            if on_step is not None:
                on_step(step, total_steps, step_loss)
            if step % cfg.log_every == 0 or step == total_steps:
                mfu_now = mfu(tps, n_params, peak, d.world)
                values: dict[str, float | int | str] = {
                    "loss": window_loss / window_targets,
                    "lr": lr_at(step - 1),
                    "tokens_per_s": round(tps, 1),
                    "epoch": round(micro_done / len(per_epoch), 3),
                }
                if grad_norm is not None:
                    values["grad_norm"] = float(grad_norm)
                if mfu_now is not None:
                    values["mfu"] = round(mfu_now, 4)
                metrics.log(step, values)
                window_loss = window_targets = 0.0
            if cfg.save_every and step % cfg.save_every == 0 and step < total_steps:
                where = {"step": step, "micro_done": micro_done, "epoch": epoch, "position": position}
                save_checkpoint(
                    out / "checkpoints" / f"step-{step}", model, tokenizer, optimizer, where, d, torch, cfg
                )
    final = out / "final"
    save_checkpoint(final, model, tokenizer, None, {"step": step}, d, torch, cfg)
    metrics.close()
    elapsed = time.perf_counter() - t_start
    tps = tokens_seen * d.world / max(elapsed, 1e-9)
    return BCResult(final, step, first_loss, last_loss, tps, mfu(tps, n_params, peak, d.world), stats)


# --- pieces ------------------------------------------------------------------------------------------
def load_model(model: str | None, init: str | None, seed: int, resume_from: Path | None) -> tuple[Any, Any]:
    """The model and tokenizer to train: from a checkpoint to resume, a `init` config, or `model`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if resume_from is not None:
        source = str(resume_from)
    elif init:
        from agentgym.trainer.tiny import build

        built, tokenizer = build(init, seed)
        return built, tokenizer
    elif model:
        source = model
    else:
        raise DataError("give --model (a model directory or hub id) or --init tiny|small")
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    import torch

    loaded = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    return loaded, tokenizer


def _epoch_batches(
    examples: list[Example], cfg: BCConfig, d: distributed.Dist, epoch: int
) -> list[list[Example]]:
    """This rank's batches for an epoch: the same shuffled list everywhere, dealt round-robin, cut
    to a multiple of the world size so every rank takes the same number of steps."""
    allb = batches(examples, cfg.max_tokens, seed=cfg.seed * 1000 + epoch)
    usable = len(allb) - len(allb) % d.world if len(allb) >= d.world else len(allb)
    mine = allb[d.rank : usable : d.world]
    if not mine:
        raise DataError(
            f"{len(allb)} batches cannot be shared by {d.world} processes: add data or lower --max-tokens"
        )
    return mine


def wrap(model: Any, cfg: BCConfig, d: distributed.Dist, torch: Any) -> Any:
    if cfg.fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if d.device.startswith("cuda")
            else None
        )
        kwargs = {"mp_policy": mp} if mp is not None else {}
        for layer in getattr(getattr(model, "model", model), "layers", []):
            fully_shard(layer, **kwargs)
        fully_shard(model, **kwargs)
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.device(d.device).index] if d.device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: Any) -> Any:
    return getattr(model, "module", model)


def save_checkpoint(
    path: Path,
    model: Any,
    tokenizer: Any,
    optimizer: Any,
    where: dict[str, int],
    d: distributed.Dist,
    torch: Any,
    cfg: BCConfig,
) -> None:
    """A Hugging Face model directory (+ trainer_state.pt for resuming); written atomically by rank 0.
    Under FSDP every rank takes part: the sharded weights and optimizer state are gathered whole."""
    state_dict = optim_state = None
    keys = "ids"
    if cfg.fsdp and d.enabled:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        whole = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state_dict = get_model_state_dict(model, options=whole)
        if optimizer is not None:
            # Each rank holds a shard of AdamW's moments: gathered on rank 0, keyed by parameter
            # name (positions mean nothing to a sharded model), so any number of ranks can resume.
            optim_state = get_optimizer_state_dict(model, optimizer, options=whole)
            keys = "names"
    elif optimizer is not None and d.main:
        optim_state = optimizer.state_dict()
    if d.main:
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        inner = unwrap(model)
        if state_dict is not None:
            inner.save_pretrained(tmp, state_dict=state_dict)
        else:
            inner.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if optimizer is not None:
            torch.save(
                {
                    "optimizer": optim_state,
                    "optimizer_keys": keys,
                    "torch_rng": torch.get_rng_state(),
                    **where,
                },
                tmp / "trainer_state.pt",
            )
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
        prune(path.parent, cfg.keep_checkpoints)
        log.info("checkpoint saved", extra={"path": str(path), "step": where["step"]})
    distributed.barrier(d)


def load_optimizer(model: Any, optimizer: Any, state: dict[str, Any], path: Path, *, sharded: bool) -> None:
    """The optimizer state of a checkpoint, into `optimizer`. A state keyed by parameter name (saved
    under FSDP) loads into a sharded or a whole model; one keyed by position (saved without FSDP,
    by the optimizer itself) only into a whole one."""
    if state.get("optimizer_keys", "ids") == "names":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        # Every rank reads the whole state and keeps its own shard of it.
        set_optimizer_state_dict(
            model, optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True)
        )
    elif sharded:
        raise DataError(
            f"{path} was saved without --fsdp: its optimizer state cannot be loaded into a sharded model; "
            "resume it without --fsdp, or start afresh in another --out (or with resume off)"
        )
    else:
        optimizer.load_state_dict(state["optimizer"])


def prune(folder: Path, keep: int) -> None:
    steps = sorted(
        (p for p in folder.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp")),
        key=lambda p: int(p.name[5:]),
    )
    for old in steps[: max(0, len(steps) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def _latest_checkpoint(out: Path) -> Path | None:
    steps = [
        p
        for p in (out / "checkpoints").glob("step-*")
        if (p / "trainer_state.pt").exists() and not p.name.endswith(".tmp")
    ]
    return max(steps, key=lambda p: int(p.name[5:]), default=None)


def peak_tflops(torch: Any, device: str) -> float | None:
    """Dense bf16 peak per GPU, for MFU; None on CPU or an unknown GPU (pass --peak-tflops)."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    for key, tflops in (("H200", 989.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0), ("A10", 125.0)):
        if key in name:
            return tflops
    return None


def mfu(tokens_per_s: float, n_params: int, peak_tflops: float | None, world: int) -> float | None:
    """Model FLOPs utilisation: 6 x parameters FLOPs per token (forward + backward) over the peak."""
    if peak_tflops is None:
        return None
    return tokens_per_s * 6 * n_params / (peak_tflops * 1e12 * world)


def _progress(enabled: bool, total: int, done: int) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  tokens/s {task.fields[tps]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )

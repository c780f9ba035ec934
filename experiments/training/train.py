"""Training the tiny models of ``experiments.training.model`` on MQAR, one per variant.

Every variant gets the same width, depth, data and budget (:class:`TrainConfig`): AdamW,
linear warm-up then cosine decay to 10%, gradient clipping, cross-entropy at the answer
positions only. Everything is drawn from the seed: the weights (``TinyLM(config, seed)``),
the training batches (``numpy.random.default_rng([seed, 1])``), the held-out set
(``[seed, 2]``) and PrFlash's mask seed (``[seed, 3]``); training runs float32 torch on
the CPU, whose kernels here are deterministic for a fixed thread count, so the same seed,
settings and thread count give bit-identical losses and weights (tested; no
``torch.use_deterministic_algorithms``, which would import torch's compiler, ~4 s).

A model counts as trained when its accuracy on the held-out sequences (answer positions
only) is at least ``TRAINED`` (0.9). Random masks (PrFlash) are drawn for each training
step (``step`` = the step index) and, for evaluation, at steps from ``EVAL_STEP`` on,
which training never reaches: accuracy is the model's under its own random masks.

The curve is an ``xarray.Dataset`` with CF-style attributes (``curve_dataset``), stored as
JSON in the checkpoint's metadata (key ``curve``) and read back by :func:`load_curve`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from experiments.training.model import ModelConfig, TinyLM, read_metadata, save
from experiments.training.mqar import MQARBatch, MQARTask, generate

VARIANTS: tuple[str, ...] = ("mha", "gqa", "mqa", "mla", "mfa", "mfa_kr", "ansan", "prflash",
                             "dma")
MODELS: tuple[str, ...] = (*VARIANTS, "ssd", "dma_cdmoe")
"""What ``train-variants`` trains: the attention variants with the GELU MLP, the SSD mixer
(with RoPE, Cheems's mixer) with the same MLP, and DMA with the cross-domain mixture of
experts (Cheems's pairing of its attention with its feed-forward). A name is the mixer,
with "_cdmoe" for the CDMoE feed-forward (``ModelConfig.name``)."""
TRAINED = 0.9
EVAL_STEP = 2**40
CONVENTIONS = "CF-1.10"


@dataclass(frozen=True)
class TrainConfig:
    """The shared budget: steps of ``batch`` sequences; eval on ``eval_size`` held-out
    sequences (every ``eval_every`` steps on the first ``eval_subset`` of them)."""

    steps: int = 2000
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 50
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_size: int = 2000
    eval_subset: int = 256
    eval_batch: int = 500

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "eval_every", "eval_size", "eval_subset", "eval_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {self.warmup!r}")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.grad_clip > 0):
            raise ValueError("lr and grad_clip must be positive, weight_decay >= 0")

    def learning_rate(self, step: int) -> float:
        """The rate of step ``step`` (0-based): warm-up, then cosine to lr / 10."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        t = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def variant_options(variant: str, task: MQARTask, seed: int = 0) -> dict[str, Any]:
    """The mixer's own settings on ``task`` (beyond the shared sizes):

    * gqa: 2 key/value groups of the 4 heads;
    * mla, mfa, mfa_kr: the package defaults (MLA d_c = 4 d_h with d_r = d_h/2 decoupled
      RoPE; MFA C = 2 d_h);
    * ansan: an anchor at every value token of the key-value section, so each anchor
      closes the segment of one pair (AnLLM's anchor token summarising its segment) and
      the query section (one open segment) sees the key-value section only through the
      8 anchors;
    * prflash: blocks of 16 tokens, p(delta) = min(1, 3 / (delta + 1)) (harmonic, c = 3:
      the block 3 away, the key-value section seen from the last block, is kept with
      probability 3/4), drawn per batch member and step; 97.5% of the causal blocks are
      computed on average at 64 tokens (``attention.prflash.expected_work``);
    * dma: top-16 keys per query (a 4x smaller cache at 64 tokens), "linear" form (the
      2025 kernel's b = A softplus(delta) with A = 0 at the start, so training starts from
      MHA with the first 16 keys; the "exp" form, b = exp(A softplus(delta)) with A = 1,
      stayed at chance, 0.12, after 1000 steps at lr 3e-3 in the tuning runs);
    * ssd: the package defaults (``model.SSD_DEFAULTS``: state N = 16, head dim d/heads,
      RoPE on B and C, A = -exp(A_log)).
    """
    if variant == "ssd":
        return {}
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {(*VARIANTS, 'ssd')}")
    if variant == "gqa":
        return {"groups": 2}
    if variant == "ansan":
        return {"anchors": tuple(range(1, 2 * task.pairs, 2))}
    if variant == "prflash":
        mask_seed = int(np.random.default_rng([seed, 3]).integers(2**31))
        return {"block": 16, "p": "harmonic", "p_param": 3.0, "per_member": True,
                "mask_seed": mask_seed}
    if variant == "dma":
        return {"window": 16, "dma_form": "linear"}
    return {}


def model_config(name: str, task: MQARTask, seed: int = 0, *, d_model: int = 64,
                 heads: int = 4, layers: int = 2, positions: str = "learned") -> ModelConfig:
    """The shared architecture with the model's mixer (``variant_options``) and
    feed-forward (``name`` ending in "_cdmoe": CDMoE with ``model.CDMOE_DEFAULTS``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    variant = name.removesuffix("_cdmoe")
    return ModelConfig(variant, vocab=task.vocab, d_model=d_model, heads=heads, layers=layers,
                       positions=positions, max_len=task.seq_len,
                       options=variant_options(variant, task, seed),
                       feedforward="cdmoe" if name.endswith("_cdmoe") else "mlp")


@dataclass
class TrainResult:
    """A trained model, its curve, and the held-out loss and accuracy."""

    model: TinyLM
    config: ModelConfig
    task: MQARTask
    train: TrainConfig
    seed: int
    curve: xr.Dataset
    loss: float
    accuracy: float
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return self.accuracy >= TRAINED


def _loss_accuracy(logits: torch.Tensor, batch: MQARBatch) -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.from_numpy(batch.mask)
    picked = logits[mask]
    target = torch.from_numpy(batch.targets)[mask]
    loss = torch.nn.functional.cross_entropy(picked, target)
    return loss, (picked.argmax(-1) == target).double().mean()


@torch.no_grad()
def evaluate(model: TinyLM, data: MQARBatch, *, chunk: int = 500,
             step: int = EVAL_STEP) -> tuple[float, float]:
    """(loss, accuracy) at the answer positions of ``data``, in chunks of ``chunk``
    sequences; chunk c draws random masks at ``step + c``."""
    was = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for c, start in enumerate(range(0, data.inputs.shape[0], chunk)):
        part = MQARBatch(*(a[start:start + chunk] for a in data))
        logits = model(torch.from_numpy(part.inputs), step=step + c)
        mask = torch.from_numpy(part.mask)
        target = torch.from_numpy(part.targets)[mask]
        picked = logits[mask]
        total_loss += float(torch.nn.functional.cross_entropy(picked, target, reduction="sum"))
        correct += int((picked.argmax(-1) == target).sum())
        count += int(mask.sum())
    model.train(was)
    return total_loss / count, correct / count


def train(config: ModelConfig, task: MQARTask, settings: TrainConfig = TrainConfig(), *,
          seed: int = 0, log: Callable[[str], None] | None = None,
          log_every: int = 100) -> TrainResult:
    """Train ``TinyLM(config, seed)`` on MQAR batches drawn from ``seed`` (module docstring)."""
    if config.vocab != task.vocab or (config.positions == "learned"
                                      and config.max_len < task.seq_len):
        raise ValueError("the model's vocabulary (and learned positions) must cover the task")
    start = time.perf_counter()
    model = TinyLM(config, seed=seed).train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=settings.lr, betas=(0.9, 0.98))
    data = np.random.default_rng([seed, 1])
    held_out = generate(task, settings.eval_size, [seed, 2])
    subset = MQARBatch(*(a[:settings.eval_subset] for a in held_out))
    n = settings.steps
    train_loss, train_acc, lrs = np.empty(n), np.empty(n), np.empty(n)
    eval_steps, eval_loss, eval_acc = [], [], []
    for step in range(n):
        lr = settings.learning_rate(step)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = generate(task, settings.batch, data)
        loss, acc = _loss_accuracy(model(torch.from_numpy(batch.inputs), step=step), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        opt.step()
        train_loss[step], train_acc[step], lrs[step] = loss.item(), acc.item(), lr
        done = step + 1
        if done % settings.eval_every == 0 or done == n:
            el, ea = evaluate(model, subset, chunk=settings.eval_batch)
            eval_steps.append(done)
            eval_loss.append(el)
            eval_acc.append(ea)
        if log is not None and (done % log_every == 0 or done == n):
            recent = slice(max(0, done - log_every), done)
            tail = f", held-out acc {eval_acc[-1]:.3f}" if eval_steps and eval_steps[-1] == done \
                else ""
            log(f"[{config.name}] step {done}/{n}: loss {np.mean(train_loss[recent]):.3f}, "
                f"acc {np.mean(train_acc[recent]):.3f}{tail} "
                f"({time.perf_counter() - start:.0f} s)")
    loss, accuracy = evaluate(model, held_out, chunk=settings.eval_batch)
    seconds = time.perf_counter() - start
    model.eval()
    curve = curve_dataset(config, task, settings, seed, train_loss, train_acc, lrs,
                          np.array(eval_steps), np.array(eval_loss), np.array(eval_acc),
                          loss, accuracy, seconds)
    return TrainResult(model, config, task, settings, seed, curve, loss, accuracy, seconds)


def curve_dataset(config: ModelConfig, task: MQARTask, settings: TrainConfig, seed: int,
                  train_loss: np.ndarray, train_acc: np.ndarray, lrs: np.ndarray,
                  eval_steps: np.ndarray, eval_loss: np.ndarray, eval_acc: np.ndarray,
                  loss: float, accuracy: float, seconds: float) -> xr.Dataset:
    """The training curve with CF-style attributes (dimensionless units "1")."""
    steps = np.arange(1, train_loss.size + 1)

    def var(dims, data, long_name, units="1", **attrs):
        return (dims, np.asarray(data, dtype=np.float64), {"long_name": long_name,
                                                           "units": units, **attrs})

    ds = xr.Dataset(
        {
            "train_loss": var("step", train_loss, "cross-entropy at the answer positions of "
                              "the training batch", units="nat"),
            "train_accuracy": var("step", train_acc, "accuracy at the answer positions of the "
                                  "training batch"),
            "learning_rate": var("step", lrs, "AdamW learning rate"),
            "eval_loss": var("eval_step", eval_loss, "cross-entropy at the answer positions "
                             f"of {min(settings.eval_subset, settings.eval_size)} held-out "
                             "sequences", units="nat"),
            "eval_accuracy": var("eval_step", eval_acc, "accuracy at the answer positions of "
                                 f"{min(settings.eval_subset, settings.eval_size)} held-out "
                                 "sequences"),
        },
        coords={
            "step": ("step", steps, {"long_name": "optimizer steps taken", "units": "1"}),
            "eval_step": ("eval_step", eval_steps.astype(np.int64),
                          {"long_name": "optimizer steps taken at evaluation", "units": "1"}),
        },
        attrs={
            "Conventions": CONVENTIONS,
            "title": f"MQAR training curve of a tiny {config.variant} language model",
            "institution": "attention-flows",
            "source": "experiments.training.train (float32 torch, CPU)",
            "history": f"trained from seed {seed}",
            "references": "MQAR: Arora et al., Zoology, arXiv 2312.04927; DMA: arXiv "
                          "2412.11834",
            "variant": config.variant,
            "seed": int(seed),
            "model_config": config.to_json(),
            "task": json.dumps(task.to_dict()),
            "train_config": json.dumps(asdict(settings)),
            "final_eval_loss": float(loss),
            "final_eval_accuracy": float(accuracy),
            "final_eval_sequences": int(settings.eval_size),
            "trained": int(accuracy >= TRAINED),
            "trained_threshold": TRAINED,
            "wall_seconds": float(seconds),
        },
    )
    return ds


def _json_safe(ds: xr.Dataset) -> dict[str, Any]:
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    return clean(ds.to_dict(data="list"))


def curve_from_json(text: str) -> xr.Dataset:
    """The curve Dataset of its JSON form (``Dataset.to_dict`` written by :func:`save_result`)."""
    ds = xr.Dataset.from_dict(json.loads(text))
    return ds.assign_coords(step=ds.step.astype(np.int64), eval_step=ds.eval_step.astype(np.int64))


def load_curve(path: str | Path) -> xr.Dataset:
    """The training curve stored in a checkpoint's metadata."""
    return curve_from_json(read_metadata(path)["curve"])


def save_result(result: TrainResult, path: str | Path) -> Path:
    """The checkpoint: weights, config, seed, task, training settings, final result and
    the curve (JSON) in the safetensors metadata."""
    return save(result.model, path, {
        "task": result.task.to_dict(),
        "train": asdict(result.train),
        "result": {"eval_loss": result.loss, "eval_accuracy": result.accuracy,
                   "trained": result.trained, "wall_seconds": result.seconds,
                   "parameters": result.model.parameter_count(), **result.extra},
        "curve": _json_safe(result.curve),
    })


def summarise(paths: Sequence[str | Path]) -> xr.Dataset:
    """One row per checkpoint: variant, held-out accuracy and loss, trained flag,
    parameters, wall seconds and file size."""
    rows = []
    for path in paths:
        meta = read_metadata(path)
        res = json.loads(meta["result"])
        rows.append((Path(path).name.removesuffix(".safetensors"), res,
                     Path(path).stat().st_size))
    variants = [r[0] for r in rows]

    def col(key, dtype=np.float64):
        return np.array([r[1][key] for r in rows], dtype=dtype)

    return xr.Dataset(
        {
            "eval_accuracy": ("variant", col("eval_accuracy"),
                              {"long_name": "held-out accuracy at the answer positions",
                               "units": "1"}),
            "eval_loss": ("variant", col("eval_loss"),
                          {"long_name": "held-out cross-entropy at the answer positions",
                           "units": "nat"}),
            "trained": ("variant", col("trained", np.int8),
                        {"long_name": f"held-out accuracy >= {TRAINED}", "units": "1"}),
            "parameters": ("variant", col("parameters", np.int64),
                           {"long_name": "trainable parameters", "units": "1"}),
            "wall_seconds": ("variant", col("wall_seconds"),
                             {"long_name": "training and evaluation wall time", "units": "s"}),
            "checkpoint_bytes": ("variant", np.array([r[2] for r in rows], dtype=np.int64),
                                 {"long_name": "safetensors checkpoint size", "units": "byte"}),
        },
        coords={"variant": ("variant", np.array(variants, dtype=str),
                            {"long_name": "model: its mixer, with _cdmoe for the CDMoE "
                                          "feed-forward"})},
        attrs={"Conventions": CONVENTIONS,
               "title": "tiny attention-variant language models trained on MQAR",
               "institution": "attention-flows", "source": "experiments.training.train",
               "trained_threshold": TRAINED},
    )


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _train_one(variant: str, out: Path, task: MQARTask, settings: TrainConfig, seed: int,
               architecture: dict[str, Any], log: Callable[[str], None] | None,
               threads: int | None = None) -> Path:
    if threads is not None:
        torch.set_num_threads(threads)
    config = model_config(variant, task, seed, **architecture)
    result = train(config, task, settings, seed=seed, log=log)
    path = save_result(result, out / f"{variant}.safetensors")
    if log is not None:
        log(f"[{variant}] held-out accuracy {result.accuracy:.4f} "
            f"({'trained' if result.trained else 'NOT trained'}: threshold {TRAINED}), "
            f"{result.seconds:.0f} s")
    return path


def train_variants(variants: Sequence[str], out_dir: str | Path, *, steps: int = 2000,
                   seed: int = 0, task: MQARTask | None = None,
                   settings: TrainConfig | None = None, d_model: int = 64, heads: int = 4,
                   layers: int = 2, positions: str = "learned", jobs: int = 1,
                   quiet: bool = False, log: Callable[[str], None] | None = None) -> xr.Dataset:
    """Train one model per variant with the same architecture, data and budget; write
    ``out_dir/VARIANT.safetensors`` each and ``out_dir/summary.nc`` (every checkpoint in
    ``out_dir``); return the summary of these variants. ``jobs`` > 1 trains that many
    variants at once in separate processes of one torch thread each (progress lines then
    go to stderr, ``log`` is not used); each model is the same as when trained alone with
    one thread."""
    task = task or MQARTask()
    settings = settings or TrainConfig(steps=steps)
    if settings.steps != steps:
        raise ValueError("give the step count once: steps or settings.steps")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    architecture = dict(d_model=d_model, heads=heads, layers=layers, positions=positions)
    if jobs == 1:
        log = None if quiet else (log or _stderr)
        written = [_train_one(v, out, task, settings, seed, architecture, log)
                   for v in variants]
    else:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_train_one, v, out, task, settings, seed, architecture,
                                   None if quiet else _stderr, 1) for v in variants]
            written = [f.result() for f in futures]
    everything = sorted(out.glob("*.safetensors"))
    summarise(everything).to_netcdf(out / "summary.nc")
    return summarise(written)


__all__ = ["EVAL_STEP", "MODELS", "TRAINED", "VARIANTS", "TrainConfig", "TrainResult",
           "curve_dataset", "curve_from_json", "evaluate", "load_curve", "model_config",
           "save_result", "summarise", "train", "train_variants", "variant_options"]

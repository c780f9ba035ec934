"""``python -m experiments train-variants --out DIR [options]``: one tiny causal language
model per attention variant, trained on MQAR with the same architecture, data and budget
(``experiments.training.train``); checkpoints ``DIR/VARIANT.safetensors`` and a summary
``DIR/summary.nc``. Only argparse lives at module level: torch loads in ``run`` after the
thread count is fixed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from experiments.argtypes import positive_int

MODELS = ("mha", "gqa", "mqa", "mla", "mfa", "mfa_kr", "ansan", "prflash", "dma", "ssd",
          "dma_cdmoe")
"""``experiments.training.train.MODELS``, spelled out so that ``--help`` needs no torch."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory of the checkpoints (VARIANT.safetensors) and summary.nc")
    parser.add_argument("--variants", nargs="+", choices=MODELS, default=list(MODELS),
                        metavar="VARIANT", help=f"models to train (default: all of "
                                                f"{', '.join(MODELS)}; ssd: the SSD mixer, "
                                                f"dma_cdmoe: DMA with the CDMoE feed-forward)")
    parser.add_argument("--steps", type=positive_int, default=2000,
                        help="optimizer steps per variant (default 2000)")
    parser.add_argument("--batch", type=positive_int, default=32,
                        help="sequences per step (default 32)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--eval-size", type=positive_int, default=2000, metavar="N",
                        help="held-out sequences of the final accuracy (default 2000)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights, the data and the masks (default 0)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch threads with --jobs 1 (default 1; results are "
                             "reproducible for a fixed thread count)")
    parser.add_argument("--jobs", type=positive_int, default=1,
                        help="variants trained at once, in processes of one thread each "
                             "(default 1; the models do not depend on it)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    """Train the variants, print one line per variant; 0 if every one reached the
    threshold, 1 otherwise."""
    import torch

    torch.set_num_threads(args.threads)
    from experiments.training.train import TRAINED, TrainConfig, train_variants

    settings = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr,
                           eval_size=args.eval_size)
    summary = train_variants(args.variants, args.out, steps=args.steps, seed=args.seed,
                             settings=settings, jobs=args.jobs, quiet=args.quiet)
    print(f"{'variant':8s} {'accuracy':>8s} {'trained':>8s} {'params':>7s} {'seconds':>7s} "
          f"{'bytes':>7s}")
    for v in summary.variant.values:
        row = summary.sel(variant=v)
        print(f"{v:8s} {float(row.eval_accuracy):8.4f} {'yes' if int(row.trained) else 'NO':>8s} "
              f"{int(row.parameters):7d} {float(row.wall_seconds):7.1f} "
              f"{int(row.checkpoint_bytes):7d}")
    failed = [str(v) for v in summary.variant.values if not int(summary.trained.sel(variant=v))]
    if failed:
        print(f"not trained (held-out accuracy < {TRAINED}): {', '.join(failed)}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m experiments.training.cli --out DIR ...``."""
    parser = argparse.ArgumentParser(prog="python -m experiments train-variants",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

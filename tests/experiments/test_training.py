"""Tiny MQAR models (experiments.training): the generator's invariants, training reproducible
from the seed, checkpoints that round-trip with their curve, operators equal to the torch
layers, and a small MHA model whose loss falls."""

import json

import numpy as np
import pytest
import torch
import xarray as xr

from experiments.training.cli import main
from experiments.training.model import ModelConfig, TinyLM, load_trained, read_metadata, save
from experiments.training.mqar import PAD, MQARTask, generate
from experiments.training.train import (
    TrainConfig,
    load_curve,
    model_config,
    save_result,
    train,
    variant_options,
)

SMALL = MQARTask(vocab=16, seq_len=16, pairs=3, queries=5)


SMALL_MOE = {"hidden": 8, "experts": 16, "heads": 2, "k": 2}


def _small_config(variant: str = "mha", **changes) -> ModelConfig:
    """A small model of ``variant`` (a mixer, or "X_cdmoe": X with a small CDMoE)."""
    data = dict(vocab=SMALL.vocab, d_model=16, heads=2, layers=2, mlp_ratio=2,
                max_len=SMALL.seq_len)
    if variant.endswith("_cdmoe"):
        variant = variant.removesuffix("_cdmoe")
        data.update(feedforward="cdmoe", moe=SMALL_MOE)
    data["options"] = variant_options(variant, SMALL, seed=3)
    if variant == "prflash":
        data["options"] = {**data["options"], "block": 4}
    data.update(changes)
    return ModelConfig(variant, **data)


# -- the data ------------------------------------------------------------------------------


@pytest.mark.parametrize("task", [MQARTask(), MQARTask(queries=None),
                                  MQARTask(vocab=32, seq_len=24, pairs=5, queries=3)])
def test_each_answer_is_the_value_that_followed_its_key(task):
    batch = generate(task, 50, 7)
    P, K = task.pairs, task.n_keys
    assert batch.inputs.shape == batch.targets.shape == batch.mask.shape == (50, task.seq_len)
    np.testing.assert_array_equal(batch.inputs[:, 1:], batch.targets[:, :-1])
    assert (batch.mask.sum(axis=1) == task.n_queries).all()
    for inp, tgt, mask in zip(*batch, strict=True):
        keys, values = inp[0 : 2 * P : 2], inp[1 : 2 * P : 2]
        assert len(set(keys)) == P and len(set(values)) == P
        assert ((keys >= 1) & (keys <= K)).all() and ((values > K) & (values < task.vocab)).all()
        value_of = dict(zip(keys, values, strict=True))
        asked = np.nonzero(mask)[0]
        assert (asked >= 2 * P).all()
        for i in asked:
            assert inp[i] in value_of and tgt[i] == value_of[inp[i]]
        # the query section holds the queries, their answers and pads only
        section = inp[2 * P :]
        assert np.isin(section[section != PAD], np.concatenate([keys, values])).all()
        assert set(inp[asked]) == set(keys) if task.n_queries >= P else \
            len(set(inp[asked])) == task.n_queries


def test_seeds_reproduce_and_differ():
    a, b, c = generate(MQARTask(), 8, 1), generate(MQARTask(), 8, 1), generate(MQARTask(), 8, 2)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.inputs, c.inputs)
    gen = np.random.default_rng(1)
    assert not np.array_equal(generate(MQARTask(), 8, gen).inputs,
                              generate(MQARTask(), 8, gen).inputs)


def test_bad_tasks_are_refused():
    with pytest.raises(ValueError, match="too few"):
        MQARTask(vocab=8, pairs=4)
    with pytest.raises(ValueError, match="too short"):
        MQARTask(seq_len=16, pairs=8)


# -- training --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["mha", "prflash", "dma", "ssd", "dma_cdmoe"])
def test_training_is_reproducible_from_the_seed(variant):
    cfg = _small_config(variant)
    settings = TrainConfig(steps=3, batch=4, warmup=1, eval_every=2, eval_size=8, eval_subset=4)
    first, second = (train(cfg, SMALL, settings, seed=11) for _ in range(2))
    np.testing.assert_array_equal(first.curve.train_loss, second.curve.train_loss)
    np.testing.assert_array_equal(first.curve.eval_loss, second.curve.eval_loss)
    assert first.loss == second.loss and first.accuracy == second.accuracy
    weights = second.model.state_dict()
    for name, p in first.model.state_dict().items():
        assert torch.equal(p, weights[name]), name
    other = train(cfg, SMALL, settings, seed=12)
    assert not np.array_equal(first.curve.train_loss, other.curve.train_loss)


def test_checkpoint_round_trip(tmp_path):
    settings = TrainConfig(steps=2, batch=4, warmup=1, eval_every=1, eval_size=8, eval_subset=4)
    result = train(_small_config("ansan"), SMALL, settings, seed=4)
    path = save_result(result, tmp_path / "ansan.safetensors")
    model, config = load_trained(path)
    assert config == result.config and model.seed == 4
    tokens = torch.from_numpy(np.random.default_rng(0).integers(0, SMALL.vocab, (3, 16)))
    with torch.no_grad():
        assert torch.equal(model(tokens), result.model(tokens))
    curve = load_curve(path)
    assert isinstance(curve, xr.Dataset) and curve.attrs["Conventions"].startswith("CF-")
    xr.testing.assert_allclose(curve, result.curve)
    assert curve.train_loss.attrs["units"] == "nat" and curve.step.dtype == np.int64
    meta = read_metadata(path)
    assert json.loads(meta["task"]) == SMALL.to_dict()
    assert json.loads(meta["result"])["eval_accuracy"] == result.accuracy


@pytest.mark.parametrize("variant", ["mla", "mfa_kr", "dma", "ssd"])
def test_mixers_are_the_layers_in_float64(variant, tmp_path):
    model = TinyLM(_small_config(variant), seed=2)
    path = save(model, tmp_path / "m.safetensors")
    model, _ = load_trained(path)
    x = torch.randn(2, 16, 16, generator=torch.Generator().manual_seed(0))
    block = model.blocks[0]
    with torch.no_grad():
        want = block.mix(block.norm1(x)).double().numpy()
    raw, folded = model.mixers()[0], model.mixers(fold_norm=True)[0]
    arrays = [a for a in vars(getattr(raw, "heads", raw)).values() if isinstance(a, np.ndarray)]
    assert arrays and all(a.dtype == np.float64 for a in arrays)
    normed = block.norm1(x).detach().double().numpy()
    np.testing.assert_allclose(raw.forward(normed), want, atol=1e-5)
    u = x.double().numpy() / np.linalg.norm(x.double().numpy(), axis=-1, keepdims=True)
    np.testing.assert_allclose(folded.forward(u), want, atol=1e-5)


def test_small_mha_model_learns():
    task = MQARTask(vocab=16, seq_len=16, pairs=2, queries=6)
    cfg = ModelConfig("mha", vocab=16, d_model=32, heads=2, layers=2, mlp_ratio=2, max_len=16)
    settings = TrainConfig(steps=50, batch=16, lr=3e-3, warmup=5, eval_every=50, eval_size=64)
    result = train(cfg, task, settings, seed=0)
    loss = result.curve.train_loss.values
    assert loss[-10:].mean() < 0.75 * loss[:10].mean()
    assert result.curve.eval_loss.values[-1] < loss[:5].mean()


def test_model_config_is_the_shared_architecture():
    task = MQARTask()
    configs = {v: model_config(v, task, seed=0) for v in ("mha", "gqa", "ansan", "prflash")}
    assert {(c.d_model, c.heads, c.layers) for c in configs.values()} == {(64, 4, 2)}
    assert configs["ansan"].options["anchors"] == (1, 3, 5, 7, 9, 11, 13, 15)
    ops = [configs["prflash"].operator_config(layer) for layer in (0, 1)]
    assert ops[1].mask_seed == ops[0].mask_seed + 1
    assert ModelConfig.from_json(configs["ansan"].to_json()) == configs["ansan"]


def test_command_line_writes_checkpoints_and_summary(tmp_path, capsys):
    status = main(["--out", str(tmp_path), "--variants", "mqa", "--steps", "2", "--batch", "2",
                   "--eval-size", "16", "--quiet"])
    assert status == 1  # two steps do not train it, and the command says so
    out = capsys.readouterr().out
    assert "mqa" in out and "not trained" in out
    summary = xr.open_dataset(tmp_path / "summary.nc")
    assert list(summary.variant.values) == ["mqa"] and summary.trained.item() == 0
    assert (tmp_path / "mqa.safetensors").stat().st_size < 1_000_000


def test_a_trained_model_is_its_flow_in_depth():
    """The committed MHA model trained on MQAR: Euler with h = 1 on ``model_flow`` of its
    blocks reproduces its hidden states (float64)."""
    from pathlib import Path

    from dynamics import model_flow, simulate
    from experiments.training.model import load_trained
    from experiments.training.mqar import MQARTask, generate

    model, _ = load_trained(Path(__file__).parents[2] / "experiments/trained/mha.safetensors")
    model = model.double()
    tokens = torch.as_tensor(generate(MQARTask(), 2, seed=7).inputs)
    with torch.no_grad():
        states = [model.embed_tokens(tokens)]
        for block in model.blocks:
            states.append(block(states[-1]))
    flow = model_flow(model.network())
    values = np.asarray(simulate(flow, states[0].numpy(), times=np.arange(3), method="euler",
                                 dt=1.0).values)
    for layer in range(3):
        assert np.abs(values[:, layer] - states[layer].numpy()).max() < 1e-10

"""Imported layers compute what the torch modules compute (float64, fresh random inputs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attention import Operator
from attention.importers import from_torch
from attention.transformer import Residual
from tests.models.tiny import HEADS, WIDTH, build

TOL = 1e-12


def _tokens(seed: int, batch: int = 2, n: int = 7, d: int = WIDTH) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, d, dtype=torch.float64, generator=g)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("causal", [False, True])
def test_multihead_attention_is_reproduced_exactly(bias, batch_first, causal):
    torch.manual_seed(3)
    module = torch.nn.MultiheadAttention(12, 3, bias=bias, batch_first=batch_first)
    module = module.double().eval()
    with torch.no_grad():  # nonzero biases: torch initialises in_proj_bias to zero
        for p in module.parameters():
            if p.ndim == 1:
                p.normal_()
    op = from_torch(module, causal=causal)
    x = _tokens(1, d=12)
    xi = x if batch_first else x.transpose(0, 1)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(7, dtype=torch.float64)
    with torch.no_grad():
        y = module(xi, xi, xi, need_weights=False, attn_mask=mask if causal else None,
                   is_causal=causal)[0]
    y = (y if batch_first else y.transpose(0, 1)).numpy()
    assert isinstance(op, Operator)
    assert np.abs(op.forward(x.numpy()) - y).max() <= TOL
    assert np.abs(op.forward(x).numpy() - y).max() <= TOL  # torch input, same numbers


def test_multihead_attention_bias_matters():
    """With torch's default bias=True, dropping the biases is visibly wrong: the import is
    exact only because it carries them."""
    torch.manual_seed(4)
    module = torch.nn.MultiheadAttention(12, 3).double().eval()
    with torch.no_grad():
        module.in_proj_bias.normal_()
        module.out_proj.bias.normal_()
    op = from_torch(module)
    from dataclasses import replace

    no_bias = replace(op, heads=replace(op.heads, b_Q=None, b_K=None, b_V=None, b_O=None))
    x = _tokens(2, d=12).numpy()
    assert np.abs(no_bias.forward(x) - op.forward(x)).max() > 0.1


def test_import_leaves_the_module_untouched():
    module = torch.nn.MultiheadAttention(12, 3).double().eval()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    op = from_torch(module)
    op.heads.W_Q[...] = 0.0  # the operator owns copies
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not module.training and next(module.parameters()).dtype == torch.float64


def _module_output(kind: str, model, x: torch.Tensor):
    """(importable attention module, its output on x) for one architecture."""
    n = x.shape[1]
    causal = torch.full((n, n), -torch.inf, dtype=x.dtype).triu(1)[None, None]
    with torch.no_grad():
        if kind == "bert":
            module = model.encoder.layer[1].attention
            return module, module(x)[0]
        if kind == "albert":
            module = model.encoder.albert_layer_groups[0].albert_layers[0].attention
            return module, module(x)[0]
        if kind == "gpt2":
            module = model.h[1].attn  # the model hands its causal mask to the module
            return module, module(x, attention_mask=causal)[0]
        module = model.layers[1].self_attn  # RoPE tables of the config's base, in float64
        e = module.head_dim
        angles = torch.arange(n, dtype=x.dtype)[:, None] * 10000.0 ** (
            -torch.arange(0, e, 2, dtype=x.dtype) / e)
        emb = torch.cat([angles, angles], dim=-1)[None]
        cos, sin = emb.cos(), emb.sin()
        return module, module(x, position_embeddings=(cos, sin), attention_mask=causal)[0]


@pytest.mark.parametrize("kind", ["bert", "albert", "gpt2", "llama", "qwen2"])
def test_hugging_face_attention_modules_are_reproduced_exactly(kind):
    from tests.models.tiny import exact_float64

    model = build(kind, seed=5)
    x = _tokens(6, n=9)
    with exact_float64():
        module, y = _module_output(kind, model, x)
    imported = from_torch(module)
    expected_type = Residual if kind in ("bert", "albert") else Operator
    assert isinstance(imported, expected_type)
    assert np.abs(imported(x.numpy()) - y.numpy()).max() <= TOL


def test_bert_self_attention_concatenates_its_heads():
    model = build("bert", seed=7)
    module = model.encoder.layer[0].attention.self
    x = _tokens(8)
    with torch.no_grad():
        y = module(x)[0]
    op = from_torch(module)
    assert op.heads.n_heads == HEADS
    assert np.abs(op.forward(x.numpy()) - y.numpy()).max() <= TOL


def test_unsupported_and_unsafe_modules_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="not a supported attention module"):
        from_torch(torch.nn.Linear(4, 4))
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        from_torch(np.eye(3))
    training = torch.nn.MultiheadAttention(8, 2, dropout=0.1)  # modules start in train mode
    with pytest.raises(ValueError, match=r"\.eval\(\)"):
        from_torch(training)
    with pytest.raises(ValueError, match="cross-attention"):
        from_torch(torch.nn.MultiheadAttention(8, 2, kdim=5, vdim=5).eval())
    with pytest.raises(ValueError, match="add_bias_kv"):
        from_torch(torch.nn.MultiheadAttention(8, 2, add_bias_kv=True).eval())
    with pytest.raises(ValueError, match="brings its model's mask"):
        from_torch(build("gpt2").h[0].attn, causal=True)


@pytest.mark.parametrize("causal", [False, True])
def test_padding_mask_reproduces_key_padding(causal):
    """torch's key_padding_mask hides padded keys; the imported operator with_padding does
    the same for every real query (padded queries mean nothing in either)."""
    torch.manual_seed(8)
    module = torch.nn.MultiheadAttention(12, 3, batch_first=True).double().eval()
    x = _tokens(9, batch=3, n=8, d=12)
    valid = np.ones((3, 8), dtype=bool)
    valid[0, 6:] = False  # right padding
    valid[2, :3] = False  # left padding
    mask = torch.nn.Transformer.generate_square_subsequent_mask(8, dtype=torch.float64)
    with torch.no_grad():
        y = module(x, x, x, need_weights=False, key_padding_mask=torch.from_numpy(~valid),
                   attn_mask=mask if causal else None)[0].numpy()
    op = from_torch(module, causal=causal).with_padding(valid)
    ours = op.forward(x.numpy())
    rows = valid.copy()
    if causal:  # a left-padded query before any real key has nothing to see in torch (NaN)
        rows &= np.cumsum(valid, axis=1) > 0
    assert np.abs(ours - y)[rows].max() <= TOL
    assert np.all(np.isfinite(ours))


def test_incomplete_checkpoint_is_refused(tmp_path):
    """A safetensors checkpoint lacking a weight would be filled with random numbers by
    transformers; the loader refuses it and names the missing key."""
    from safetensors.torch import load_file, save_file

    from attention.importers import load_model

    build("gpt2", seed=1).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    dropped = next(k for k in weights if "c_attn.weight" in k)
    del weights[dropped]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="lacks 1 weights"):
        load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="no local safetensors"):
        load_model(tmp_path / "nowhere")

"""The SSD mixer and the CDMoE feed-forward in the tiny MQAR models: their torch layers equal
the float64 references, a model with them is its flow in depth (Euler, h = 1), and the
trained-variant field flows an SSD layer with the state a decoder keeps."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from attention.moe import CrossDomainMoE
from attention.moe_layer import CDMoELayer
from attention.ssd import StateSpaceDuality
from attention.ssd_layer import SSDLayer
from dynamics import model_flow, simulate
from dynamics.fields.ssd import SSDField
from experiments.fields import Members
from experiments.studies.trained_flows import TrainedFieldParams
from experiments.training import cli
from experiments.training.model import ModelConfig, TinyLM, save
from experiments.training.mqar import MQARTask, generate
from experiments.training.train import MODELS, model_config

SMALL = MQARTask(vocab=16, seq_len=16, pairs=3, queries=5)
MOE = {"hidden": 8, "experts": 16, "heads": 2, "k": 2}


def _config(variant: str, feedforward: str = "mlp") -> ModelConfig:
    return ModelConfig(variant, vocab=16, d_model=16, heads=2, layers=2, mlp_ratio=2,
                       max_len=16, feedforward=feedforward,
                       moe=MOE if feedforward == "cdmoe" else {})


def test_cdmoe_layer_is_the_reference_and_trains_only_what_it_retrieves():
    layer = CDMoELayer(12, 10, 16, 2, 2, seed=3, dtype=torch.float64)
    x = torch.randn(3, 5, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = CrossDomainMoE(**{n: a.detach().numpy() for n, a in layer.arrays().items()},
                         k=2, activation="silu")
    y = layer(x)
    np.testing.assert_allclose(y.detach().numpy(), ref.forward(x.numpy()), atol=1e-13)
    y.sum().backward()
    _, experts = ref.retrieve(x.numpy())
    used = np.zeros(16, bool)
    used[np.unique(experts)] = True
    touched = layer.up_embed.grad.abs().sum(-1).numpy() > 0
    np.testing.assert_array_equal(touched, used)  # a gradient reaches retrieved experts only
    assert not used.all() or experts.size >= 16


def test_ssd_layer_with_log_decay_is_the_same_map_and_keeps_a_decay():
    plain = SSDLayer(16, 2, 4, seed=5, dtype=torch.float64)
    logged = SSDLayer(16, 2, 4, seed=5, dtype=torch.float64, log_decay=True)
    x = torch.randn(2, 9, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    np.testing.assert_allclose(logged(x).detach().numpy(), plain(x).detach().numpy(),
                               atol=1e-13)
    # a step of size 20 up the gradient of sum(A) makes a plain A positive (A >= -16 at
    # initialisation); A = -exp(A_log) stays negative
    for layer in (plain, logged):
        (-layer.arrays()["A"].sum()).backward()
        torch.optim.SGD(layer.parameters(), lr=20.0).step()
    assert (plain.ssd().A > 0).all() and (logged.ssd().A < 0).all()


@pytest.mark.parametrize(("variant", "feedforward"), [("ssd", "mlp"), ("dma", "cdmoe"),
                                                      ("ssd", "cdmoe")])
def test_a_model_with_ssd_or_cdmoe_is_its_flow_in_depth(variant, feedforward):
    model = TinyLM(_config(variant, feedforward), seed=4).double().eval()
    tokens = torch.as_tensor(generate(SMALL, 3, seed=9).inputs)
    with torch.no_grad():
        states = [model.embed_tokens(tokens)]
        for block in model.blocks:
            states.append(block(states[-1]))
        logits = model(tokens)
    network = model.network()
    flow = model_flow(network)
    values = np.asarray(simulate(flow, states[0].numpy(), times=np.arange(3), method="euler",
                                 dt=1.0).values)
    for layer in range(3):
        assert np.abs(values[:, layer] - states[layer].numpy()).max() < 1e-10
    head = model.head.weight.detach().numpy()
    out = network(states[0].numpy()) @ head.T + model.head.bias.detach().numpy()
    assert np.abs(out - logits.numpy()).max() < 1e-10


def test_model_configs_refuse_what_their_parts_do_not_take():
    with pytest.raises(ValueError, match="unknown options"):
        ModelConfig("ssd", options={"groups": 2})
    with pytest.raises(ValueError, match="unknown moe"):
        ModelConfig("mha", feedforward="cdmoe", moe={"expert": 16})
    with pytest.raises(ValueError, match="unknown moe"):
        ModelConfig("mha", moe={"experts": 16})  # a CDMoE setting without a CDMoE
    with pytest.raises(ValueError, match="feedforward"):
        ModelConfig("mha", feedforward="moe")
    with pytest.raises(ValueError, match="heads x head_dim"):
        ModelConfig("ssd", options={"head_dim": 8})
    with pytest.raises(ValueError, match="no OperatorConfig"):
        ModelConfig("ssd").operator_config(0)
    cfg = model_config("dma_cdmoe", MQARTask())
    assert (cfg.variant, cfg.feedforward, cfg.name) == ("dma", "cdmoe", "dma_cdmoe")
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert cli.MODELS == MODELS  # the command line's list needs no torch import


def test_trained_variant_field_flows_an_ssd_layer(tmp_path):
    """The field of an SSD model's block: P_u S(sqrt(d) g u) for tokens u of the sphere,
    beta scaling the kernel, and the decoder's state H N p as its cache."""
    model = TinyLM(_config("ssd"), seed=6)
    save(model, tmp_path / "ssd.safetensors")
    params = TrainedFieldParams(checkpoints=str(tmp_path), variant="ssd", layer=1)
    ssd = params.mixer("ssd")
    assert isinstance(ssd, StateSpaceDuality)
    gen = np.random.default_rng(0)
    u = gen.standard_normal((2, 7, 16))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    block = model.blocks[1]
    with torch.no_grad():
        drive = block.mix(block.norm1(torch.as_tensor(u, dtype=torch.float32))).double().numpy()
    members = Members(root=0, n=7, d=16, seeds=np.arange(2), betas=np.array([1.0, 1.0]),
                      beta_index=np.zeros(2, int), backend="numpy", dtype="float64",
                      device="cpu")
    field = params.flow(members, "ssd")
    assert isinstance(field, SSDField)
    v = np.asarray(field(0.0, u))
    tangent = drive - np.sum(drive * u, axis=-1, keepdims=True) * u
    np.testing.assert_allclose(v, tangent, atol=2e-4 * np.abs(drive).max())
    # beta multiplies the kernel <C_i, B_j>: the drive without the skip term D x scales by it
    doubled = params.flow(replace(members, betas=np.array([2.0, 2.0])), "ssd")
    skip = replace(ssd, W_C=0 * ssd.W_C).forward(u)
    np.testing.assert_allclose(doubled.drive(0.0, u) - skip, 2 * (ssd.forward(u) - skip),
                               atol=1e-12)
    H, N, p = ssd.n_heads, ssd.state_dim, ssd.head_dim
    assert params.kv_elements("ssd", 32, 16) == H * N * p == 2 * 16 * 8
    assert params.kv_elements("ssd", 32, 16) * params.retained_fraction("ssd", 32, 16) \
        == H * N * p / 32
    with pytest.raises(ValueError, match="one beta"):
        params.flow(replace(members, betas=np.array([1.0, 2.0])), "ssd")

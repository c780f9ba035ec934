"""A network is its flow discretised with h = 1: Euler steps of ``model_flow`` reproduce the
hidden states of every supported architecture at every block boundary (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynamics import model_flow, simulate
from tests.models.tiny import ARCHITECTURES, VOCAB, build, exact_float64, hidden_states

TOL = 1e-10


def _ids(seed: int, batch: int = 2, n: int = 11) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_euler_with_unit_step_reproduces_the_hidden_states(kind):
    model = build(kind, seed=11)
    with exact_float64():
        hs = hidden_states(model, _ids(12))
    flow = model_flow(model)
    L = flow.depth
    assert len(hs) == L + 1
    sol = simulate(flow, hs[0], times=np.arange(L + 1), method="euler", dt=1.0)
    values = np.asarray(sol.values)
    for layer in range(L):
        assert np.abs(values[:, layer] - hs[layer]).max() <= TOL * max(1, np.abs(hs[layer]).max())
    final = flow.network.final_norm
    last = values[:, L] if final is None else final(values[:, L])
    assert np.abs(last - hs[L]).max() <= TOL * max(1, np.abs(hs[L]).max())


def test_float32_steps_of_hugging_face_llama_are_the_only_difference():
    """Unpatched, the float64 Llama computes RMSNorm and its RoPE table in float32: the flow
    (all float64) agrees to float32 rounding, not better."""
    model = build("llama", seed=13)
    hs = hidden_states(model, _ids(14))
    flow = model_flow(model)
    values = np.asarray(simulate(flow, hs[0], times=np.arange(flow.depth + 1), method="euler",
                                 dt=1.0).values)
    err = max(np.abs(values[:, k] - hs[k]).max() / np.abs(hs[k]).max()
              for k in range(1, flow.depth))
    assert 1e-12 < err < 1e-5


def test_the_flow_runs_on_torch_tokens_with_the_same_numbers():
    model = build("gpt2", seed=15)
    hs = hidden_states(model, _ids(16))
    flow = model_flow(model)
    times = np.arange(flow.depth + 1)
    a = np.asarray(simulate(flow, hs[0], times=times, method="euler", dt=1.0).values)
    b = simulate(flow, torch.from_numpy(hs[0]), times=times, method="euler", dt=1.0).values
    assert np.abs(a - b.numpy()).max() <= 1e-12


def test_albert_groups_share_their_layer():
    import transformers as tf

    from tests.models.tiny import randomize

    config = tf.AlbertConfig(vocab_size=VOCAB, embedding_size=8, hidden_size=16,
                             num_hidden_layers=6, num_hidden_groups=2, num_attention_heads=2,
                             intermediate_size=24)
    model = randomize(tf.AlbertModel(config).double().eval(), seed=17)
    flow = model_flow(model)
    blocks = flow.network.blocks
    assert [blocks[i] is blocks[0] for i in range(6)] == [True] * 3 + [False] * 3
    assert all(blocks[i] is blocks[3] for i in range(3, 6))
    hs = hidden_states(model, _ids(18))
    values = np.asarray(simulate(flow, hs[0], times=np.arange(7), method="euler",
                                 dt=1.0).values)
    assert max(np.abs(values[:, k] - hs[k]).max() for k in range(7)) <= TOL


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_smaller_steps_converge_to_the_continuous_depth_limit(kind):
    """Each Pre-LN sublayer is a smooth field: RK4 reaches its flow at fourth order (halving
    h divides the error by 16). The block's splitting (attention step, then MLP step) is
    first order: halving h halves the distance to the flow of attention + MLP."""
    model = build(kind, seed=19)
    flow = model_flow(model)
    with exact_float64():
        x0 = hidden_states(model, _ids(20, n=6))[1]

    def ratio(field, h: float) -> float:
        a, b, c = (np.asarray(simulate(field, x0, times=[0.0, 1.0], method="rk4",
                                       dt=s).values[:, -1]) for s in (h, h / 2, h / 4))
        return np.abs(a - b).max() / np.abs(b - c).max()

    for sublayer in flow.sublayers(1):
        assert 14 < ratio(sublayer, 1 / 4) < 18
    assert 1.8 < ratio(flow.block(1), 1 / 8) < 2.2


@pytest.mark.parametrize("kind", ["bert", "albert"])
def test_post_ln_is_the_authors_scheme_on_the_sphere_in_standardised_coordinates(kind):
    """With u = (x - bias)/gain the coordinates of the LayerNorm that produced x, a Post-LN
    sublayer is u -> S(u + F(u)): the authors' scheme with h = 1 on {mean 0, |u|^2 = d}.
    So the authors' scheme reproduces the hidden states, and RK4 on the tangent field with
    the retraction S converges at fourth order, staying on that sphere."""
    model = build(kind, seed=26)
    with exact_float64():
        hs = hidden_states(model, _ids(27, n=7))
    flow = model_flow(model)
    network = flow.network
    u = hs[0] if network.input_norm is None else network.input_norm.coordinates(hs[0])
    for layer in range(flow.depth):
        for sublayer in flow.standardized(layer):
            u = np.asarray(simulate(sublayer, u, times=[0.0, 1.0], method="authors",
                                    dt=1.0).values[:, -1])
        assert np.abs(network.blocks[layer].mlp.norm.affine(u) - hs[layer + 1]).max() <= TOL
    d = u.shape[-1]
    assert np.abs(u.mean(-1)).max() < 1e-12 and np.abs((u * u).sum(-1) / d - 1).max() < 1e-9
    start = network.blocks[0].mlp.norm.coordinates(hs[1])

    def end(h: float) -> np.ndarray:
        return np.asarray(simulate(flow.standardized(1)[0], start, times=[0.0, 1.0],
                                   method="rk4", dt=h).values[:, -1])

    a, b, c = end(1 / 4), end(1 / 8), end(1 / 16)
    assert 14 < np.abs(a - b).max() / np.abs(b - c).max() < 18


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_depth_limit_converges_and_differs_from_the_network(kind):
    """The continuous-depth limit starts from the network's first state, converges as dt
    shrinks (first halving changes it more than the second), and is not the network."""
    from experiments.depth import depth_limit, geometry_gap

    model = build(kind, seed=28)
    hs = hidden_states(model, _ids(29, n=6))
    flow = model_flow(model)
    coarse, fine, finer = (depth_limit(flow, hs[0], dt=dt) for dt in (0.5, 0.25, 0.125))
    assert len(fine) == flow.depth + 1 and np.array_equal(fine[0], hs[0])
    last = flow.depth
    assert np.abs(fine[last] - finer[last]).max() < np.abs(coarse[last] - fine[last]).max()
    assert geometry_gap(finer[last], hs[last]) > 1e-3
    assert geometry_gap(hs[last], hs[last]) == 0.0


def test_post_ln_with_trained_gains_refuses_steps_shorter_than_a_block():
    model = build("bert", seed=24)
    flow = model_flow(model)
    x0 = hidden_states(model, _ids(25, n=5))[0]
    with pytest.raises(ValueError, match="not idempotent"):
        simulate(flow, x0, times=[0.0, 1.0], method="euler", dt=0.5)


def test_post_ln_needs_a_fixed_step_method():
    model = build("bert", seed=21)
    flow = model_flow(model)
    x0 = hidden_states(model, _ids(22, n=5))[0]
    with pytest.raises(ValueError, match="fixed-step method"):
        simulate(flow, x0, times=[0.0, 1.0], method="dopri5")


def test_bad_models_are_refused_with_the_fix():
    import transformers as tf

    with pytest.raises(ValueError, match=r"supported: .*gpt2"):
        model_flow(tf.T5EncoderModel(tf.T5Config(vocab_size=VOCAB, d_model=16, num_layers=1,
                                                 num_heads=2, d_kv=8, d_ff=16)).eval())
    training = build("gpt2").train()
    with pytest.raises(ValueError, match=r"\.eval\(\)"):
        model_flow(training)
    config = tf.BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=16, is_decoder=True,
                           add_cross_attention=True)
    with pytest.raises(ValueError, match="cross-attention"):
        model_flow(tf.BertModel(config).eval())
    with pytest.raises(ValueError, match=r"tokens \(batch, n, 24\)"):
        simulate(model_flow(build("gpt2")), np.ones((1, 3, 5)), times=[0.0, 1.0],
                 method="euler", dt=1.0)


def test_importing_never_modifies_the_model():
    model = build("llama", seed=23)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flow = model_flow(model)
    flow.network.blocks[0].mlp.map.W_up[...] = 0.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


@pytest.mark.parametrize(("kind", "side"), [("bert", "right"), ("gpt2", "left"),
                                            ("llama", "left"), ("mistral", "left")])
def test_a_padded_batch_flows_like_the_model_with_its_attention_mask(kind, side):
    """With the model's attention mask, Euler h = 1 on ``model_flow(model, attention_mask=)``
    gives the hidden states of every real token (padded rows mean nothing in either)."""
    model = build(kind, seed=21)
    ids = _ids(22, batch=3, n=10)
    mask = torch.ones_like(ids)
    pad = (slice(None, 4) if side == "left" else slice(-4, None), slice(None, 2) if
           side == "left" else slice(-2, None))
    mask[0, pad[0]] = 0
    mask[2, pad[1]] = 0
    with exact_float64(), torch.no_grad():
        hs = [h.numpy() for h in model(input_ids=ids, attention_mask=mask,
                                       output_hidden_states=True).hidden_states]
    flow = model_flow(model, attention_mask=mask)
    values = np.asarray(simulate(flow, hs[0], times=np.arange(flow.depth + 1), method="euler",
                                 dt=1.0).values)
    real = mask.numpy().astype(bool)
    for layer in range(flow.depth):
        err = np.abs(values[:, layer] - hs[layer])[real].max()
        assert err <= TOL * max(1, np.abs(hs[layer]).max())
    # without the mask the padded tokens change the real ones (bidirectional attention or
    # left padding: padded keys are visible), so the mask is what matches
    plain = np.asarray(simulate(model_flow(model), hs[0], times=np.arange(2), method="euler",
                                dt=1.0).values)
    assert np.abs(plain[:, 1] - hs[1])[real].max() > 1e-6


def test_padding_is_refused_where_it_cannot_apply():
    from attention.transformer import Network

    model = build("gpt2", seed=23)
    with pytest.raises(ValueError, match="0/1"):
        model_flow(model, attention_mask=np.full((2, 5), 0.5))
    with pytest.raises(ValueError, match="at least one real"):
        model_flow(model, attention_mask=np.zeros((2, 5), int))
    from experiments.training.model import ModelConfig, TinyLM

    ssd = TinyLM(ModelConfig("ssd", vocab=16, d_model=16, heads=2, max_len=16)).network()
    assert isinstance(ssd, Network)
    with pytest.raises(TypeError, match="no keys to hide"):
        model_flow(ssd, attention_mask=np.ones((1, 5), bool))

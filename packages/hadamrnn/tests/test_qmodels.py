"""The reference's other models (``hadamrnn.qmodels``, spec B.2): equations against brute-force
loops, engine agreement for the linear ones, gradients, the stats quantizer inside QSSM,
spectral normalisation and Björck, the registry, warnings, summary bit-widths and export."""

from __future__ import annotations

import copy

import pytest
import torch
from bnn_shared import export
from bnn_shared.config import to_dict
from bnn_shared.errors import ConfigError
from bnn_shared.quantizers import uniform
from bnn_shared.summary import summary
from bnn_shared.testing import relative_difference
from hadamrnn import exporting
from hadamrnn.config import ModelConfig, load
from hadamrnn.extra_layers import ModReLU
from hadamrnn.getters import MODELS, get_model
from hadamrnn.qmodels import (
    QRNN,
    QSSM,
    QSSMwithEmbeddings,
    QuantizedRecurrent,
    SpectralQSSM,
    SpectralRecurrent,
    power_iteration,
)
from hadamrnn.quantized_layers import QLinear
from torch import nn

LINEAR = {
    "qssm": lambda **kw: QSSM(**kw),
    "qssm_float": lambda **kw: QSSM(num_bits=None, qoutput=False, **kw),
    "qssm_modrelu": lambda **kw: QSSM(num_bits=2, activation=ModReLU(kw["hidden_size"]), **kw),
    "spectralqssm": lambda **kw: SpectralQSSM(**kw),
    "spectralqssm_bjorck_float": lambda **kw: SpectralQSSM(num_bits=None, use_bjorck=True, **kw),
    "qssmwithembeddings": lambda **kw: QSSMwithEmbeddings(vocab_size=30, **kw),
}


def _inputs(model, batch: int = 3, steps: int = 17, features: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    if model.embedding is not None:
        return torch.randint(0, model.embedding.num_embeddings, (batch, steps), generator=generator)
    return torch.randn(batch, steps, features, generator=generator)


def _outputs_and_gradients(model, x, engine):
    model.zero_grad()
    model.engine = engine
    y = model(x)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    (y * weights).sum().backward()
    return y.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("many_to_many", [False, True])
@pytest.mark.parametrize("variant", sorted(LINEAR))
def test_linear_models_agree_on_both_engines(variant, many_to_many):
    torch.manual_seed(0)
    model = LINEAR[variant](input_size=2, hidden_size=16, output_size=4, many_to_many=many_to_many)
    model.eval()  # SpectralQSSM's power iteration would advance between the two passes
    x = _inputs(model)
    y_seq, g_seq = _outputs_and_gradients(model, x, "sequential")
    y_par, g_par = _outputs_and_gradients(model, x, "parallel")
    assert y_seq.shape == ((3, 17, 4) if many_to_many else (3, 4))
    assert relative_difference(y_par, y_seq) <= 1e-5
    for name, grad in g_seq.items():
        assert grad.abs().sum() > 0 or name == "embedding.weight", name
        assert relative_difference(g_par[name], grad) <= 1e-5, name


def _brute_force_linear(model, x):
    """``h_t = W h + b + U x_t`` step by step with the model's own matrices."""
    w, u = model.recurrent.weight(), model.input_layer.weight
    b = model.recurrent.bias
    h, states = torch.zeros(x.shape[0], w.shape[0], dtype=x.dtype), []
    for t in range(x.shape[1]):
        h = w @ h.T + u @ x[:, t].T
        h = h.T + b
        states.append(h)
    return torch.stack(states, 1)


def test_qssm_equations():
    """``W = Q_4(latent)``, U float, ``y = V sigma(h_T) + c`` with ``V`` an ``nn.Linear``."""
    torch.manual_seed(1)
    model = QSSM(input_size=3, hidden_size=8, output_size=5, num_bits=4, qoutput=False)
    assert isinstance(model.output_layer, nn.Linear) and not isinstance(model.output_layer, QLinear)
    assert model.input_layer.bits is None
    w = model.recurrent.weight()
    assert torch.equal(w, uniform(model.recurrent.latent, 4))
    assert w.unique().numel() <= 16  # 4-bit levels
    x = torch.randn(2, 6, 3)
    h = _brute_force_linear(model, x)
    assert torch.allclose(model.hidden_states(x), h, atol=1e-5)
    assert (h < 0).any()  # linear: no activation inside the recurrence
    expected = torch.relu(h[:, -1]) @ model.output_layer.weight.T + model.output_layer.bias
    assert torch.allclose(model(x), expected, atol=1e-5)
    with_qoutput = QSSM(input_size=3, hidden_size=8, output_size=5)
    assert isinstance(with_qoutput.output_layer, QLinear) and with_qoutput.output_layer.bits is None


def test_qrnn_equations_and_sequential_engine():
    """``h_t = sigma(Q(W) h + b + U x_t)``, ``y = V h_T + c`` (no second activation)."""
    torch.manual_seed(2)
    act = ModReLU(8)
    model = QRNN(input_size=3, hidden_size=8, output_size=4, num_bits=3, activation=act)
    assert model.engine == "sequential" and model.activation is act
    x = torch.randn(2, 5, 3)
    w, u, b = model.recurrent.weight(), model.input_layer.weight, model.recurrent.bias
    h = torch.zeros(2, 8)
    for t in range(5):
        h = act(h @ w.T + b + x[:, t] @ u.T)
    expected = h @ model.output_layer.weight.T + model.output_layer.bias
    assert torch.allclose(model(x), expected, atol=1e-6)
    model.engine = "parallel"  # the non-linear recurrence still runs sequentially
    assert torch.allclose(model(x), expected, atol=1e-6)
    many = QRNN(input_size=3, hidden_size=8, output_size=4, many_to_many=True)
    assert many(x).shape == (2, 5, 4)
    with pytest.raises(ConfigError, match="engine is fixed"):
        QRNN(input_size=3, hidden_size=8, output_size=4, engine="parallel")


def test_float_bits_mean_a_float_recurrent_matrix():
    torch.manual_seed(3)
    layer = QuantizedRecurrent(8, None)
    assert torch.equal(layer.weight(), layer.latent)
    assert layer.weight_precision == 32 and layer.packed_state() == {}
    q = QuantizedRecurrent(8, 2)
    assert q.weight().unique().numel() <= 4 and q.param_precisions() == {"latent": 2}


def _gradcheck_model(model, x):
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for _, p in model.named_parameters())

    def forward(*values):
        state = dict(zip(names, values, strict=True))
        return torch.func.functional_call(model, state, (x,))

    assert torch.autograd.gradcheck(forward, params, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize(
    "build",
    [
        lambda: QSSM(input_size=2, hidden_size=4, output_size=3, num_bits=None),
        lambda: QRNN(
            input_size=2, hidden_size=4, output_size=3, num_bits=None, activation=ModReLU(4)
        ),
        lambda: SpectralQSSM(input_size=2, hidden_size=4, output_size=3, num_bits=None),
        lambda: SpectralQSSM(
            input_size=2, hidden_size=4, output_size=3, num_bits=None, use_bjorck=True
        ),
    ],
)
def test_gradcheck_float64(build):
    torch.manual_seed(4)
    model = build().double().eval()
    _gradcheck_model(model, torch.randn(2, 4, 2, dtype=torch.float64))


def test_quantized_w_passes_the_gradient_straight_through():
    """Identity STE: the latent's gradient is the gradient with respect to ``Q(W)`` (a float
    model whose ``W`` is ``Q(latent)``)."""
    torch.manual_seed(5)
    model = QSSM(input_size=2, hidden_size=8, output_size=3, num_bits=2)
    float_model = copy.deepcopy(model)
    float_model.recurrent.bits = None
    with torch.no_grad():
        float_model.recurrent.latent.copy_(model.recurrent.weight())
    x = torch.randn(4, 6, 2)
    model(x).sum().backward()
    float_model(x).sum().backward()
    assert torch.allclose(model(x), float_model(x))
    grad = model.recurrent.latent.grad
    assert grad.abs().sum() > 0
    assert torch.allclose(grad, float_model.recurrent.latent.grad, atol=1e-6)


def test_spectral_normalisation_and_bjorck():
    torch.manual_seed(6)
    layer = SpectralRecurrent(16, None)
    assert torch.equal(layer.bias, torch.zeros(16))  # torchlip's zero bias
    with torch.no_grad():
        layer.latent.mul_(3.0).add_(0.5 * torch.randn(16, 16))
    for _ in range(5):  # training forwards refine the power vector
        layer.recurrence(torch.zeros(16, 1))
    assert torch.linalg.svdvals(layer.weight().detach()).max() == pytest.approx(1.0, abs=1e-3)
    reference = power_iteration(layer.latent.detach(), torch.ones(16), iterations=500, eps=0)
    assert torch.allclose(layer.power_vector.abs(), reference.abs(), atol=1e-2)
    bjorck = SpectralRecurrent(16, None, use_bjorck=True)
    with torch.no_grad():
        bjorck.latent.add_(0.2 * torch.randn(16, 16))
    for _ in range(5):
        bjorck.recurrence(torch.zeros(16, 1))
    values = torch.linalg.svdvals(bjorck.weight().detach())
    assert torch.allclose(values, torch.ones(16), atol=1e-3)
    quantized = SpectralRecurrent(16, 3, use_bjorck=True)
    assert quantized.weight().unique().numel() <= 8


def test_power_vector_moves_only_in_training():
    torch.manual_seed(7)
    model = SpectralQSSM(input_size=1, hidden_size=8, output_size=2)
    with torch.no_grad():
        model.recurrent.latent.add_(torch.randn(8, 8))
    before = model.recurrent.power_vector.clone()
    model.eval()(torch.randn(2, 3, 1))
    assert torch.equal(model.recurrent.power_vector, before)
    model.train()(torch.randn(2, 3, 1))
    assert not torch.equal(model.recurrent.power_vector, before)


def test_qssm_with_embeddings_honours_the_vocabulary():
    assert QSSMwithEmbeddings(
        input_size=4, hidden_size=8, output_size=1
    ).embedding.num_embeddings == (10000)
    model = QSSMwithEmbeddings(input_size=4, hidden_size=8, output_size=1, vocab_size=77)
    assert model.embedding.num_embeddings == 77 and model.embedding.padding_idx == 0
    cfg = load(None, ["MODEL.NAME=qssmwithembeddings", "MODEL.VOCAB_SIZE=123"])
    assert get_model(cfg).embedding.num_embeddings == 123


def _quantize_like_the_reference(v: torch.Tensor, bits: int, pre: float = 1.0) -> torch.Tensor:
    v = v * pre
    alpha = v.abs().max()
    c = 2 ** (bits - 1)
    if alpha == 0:
        return torch.zeros_like(v)
    return torch.clamp(torch.round(v * c / alpha), -c, c - 1) * alpha / c


def test_qssm_feature_quantizers_follow_the_reference_loop():
    """``x_t <- Q_in(x_t)``, ``h_(t-1) <- Q_h(pre h_(t-1))`` (calibration mode: the current
    tensor's max-abs), then the linear step; the stored states are not quantized."""
    torch.manual_seed(8)
    model = QSSM(input_size=3, hidden_size=8, output_size=2, num_bits_feat=4, pre_scaling_feat=0.5)
    assert model.engine == "sequential"
    x = torch.randn(2, 5, 3)
    w, u, b = model.recurrent.weight(), model.input_layer.weight, model.recurrent.bias
    h, states = torch.zeros(2, 8), []
    for t in range(5):
        xq = _quantize_like_the_reference(x[:, t], 4)
        h = _quantize_like_the_reference(h, 4, 0.5) @ w.T + b + xq @ u.T
        states.append(h)
    assert torch.allclose(model.hidden_states(x), torch.stack(states, 1), atol=1e-5)
    assert float(model.state_quantizer.stat_max_absolute) == pytest.approx(
        0.5 * torch.stack(states[:-1]).abs().max().item(), rel=1e-5
    )
    unquantized = QSSM(input_size=3, hidden_size=8, output_size=2)
    unquantized.load_state_dict(model.state_dict(), strict=False)
    assert not torch.allclose(unquantized(x), model(x), atol=1e-4)
    with pytest.raises(ConfigError, match="quantizes its activations itself"):
        model.hidden_states(x, state_quantizer=torch.round)


def test_registry_builds_every_new_model_from_the_config(capsys):
    for name, kind in [
        ("qrnn", QRNN),
        ("qssm", QSSM),
        ("qssmwithembeddings", QSSMwithEmbeddings),
        ("spectralqssm", SpectralQSSM),
    ]:
        cfg = load(None, [f"MODEL.NAME={name}", "MODEL.HIDDEN_SIZE=8", "MODEL.NUM_BITS=3"])
        model = get_model(cfg)
        assert type(model) is kind and model.recurrent.bits == 3
        x = torch.randint(1, 50, (2, 5)) if name == "qssmwithembeddings" else torch.randn(2, 5, 1)
        assert model(x).shape == (2, 10)
    assert MODELS.canonical("SpectralQSSM") == "spectralqssm"
    spectral = get_model(load(None, ["MODEL.NAME=spectralqssm", "MODEL.USE_BJORCK=true"]))
    assert spectral.recurrent.use_bjorck
    feat = get_model(load(None, ["MODEL.NAME=qssm", "MODEL.NUM_BITS_FEAT=6"]))
    assert feat.input_quantizer.bits == 6 and feat.engine == "sequential"
    assert capsys.readouterr().err == ""  # nothing set that the models do not read


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["MODEL.NAME=qrnn", "MODEL.ENGINE=parallel"], "MODEL.ENGINE parallel does not apply"),
        (["MODEL.NAME=qssm", "MODEL.NUM_BITS_FEAT=8", "MODEL.ENGINE=parallel"], "NUM_BITS_FEAT"),
        (["MODEL.NAME=hadamrnn", "MODEL.NUM_BITS_FEAT=8"], "MODEL.NUM_BITS_FEAT 8 has no effect"),
        (["MODEL.NAME=qssm", "MODEL.USE_BJORCK=true"], "MODEL.USE_BJORCK True has no effect"),
        (["MODEL.NAME=qrnn", "MODEL.QOUTPUT=false"], "MODEL.QOUTPUT False has no effect on qrnn"),
        (["MODEL.NAME=qssm", "MODEL.BASIC_BLOCK=2"], "MODEL.BASIC_BLOCK 2 has no effect"),
        (["MODEL.NAME=qssm", "MODEL.PRE_SCALING_FEAT=2"], "without MODEL.NUM_BITS_FEAT"),
    ],
)
def test_keys_without_effect_warn_on_one_line(overrides, needle, capsys):
    get_model(load(None, ["MODEL.HIDDEN_SIZE=8", *overrides]))
    err = capsys.readouterr().err
    assert needle in err and err.startswith("warning: ") and err.count("\n") == 1


def test_summary_bit_widths():
    def rows(model, size=(30, 1), **kwargs):
        return {layer.name: layer for layer in summary(model, size, print_fn=None, **kwargs).layers}

    qssm = rows(get_model(load(None, ["MODEL.NAME=qssm", "MODEL.HIDDEN_SIZE=16"])))
    assert qssm["recurrent"].params == {4: 256, 32: 16}
    assert qssm["input_layer"].params == {32: 16}
    assert qssm["output_layer"].params == {32: 160 + 10}
    assert qssm["model"].macs == {32: 30 * 16 * (1 + 16)}
    qrnn = rows(
        get_model(load(None, ["MODEL.NAME=qrnn", "MODEL.HIDDEN_SIZE=16", "MODEL.NUM_BITS=1"]))
    )
    assert qrnn["recurrent"].params == {2: 256, 32: 16}  # ternary W
    spectral = get_model(
        load(None, ["MODEL.NAME=spectralqssm", "MODEL.HIDDEN_SIZE=16", "MODEL.NUM_BITS=null"])
    )
    assert rows(spectral)["recurrent"].params == {32: 256 + 16}
    embedded = get_model(
        load(None, ["MODEL.NAME=qssmwithembeddings", "MODEL.HIDDEN_SIZE=8", "MODEL.VOCAB_SIZE=40"])
    )
    assert rows(embedded, (12,), dtypes=[torch.long])["embedding"].params == {32: 40}
    modrelu = get_model(
        load(None, ["MODEL.NAME=qssm", "MODEL.HIDDEN_SIZE=8", "MODEL.ACTIVATION=modrelu"])
    )
    assert rows(modrelu)["activation"].params == {32: 8}


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("qssm", {}),
        ("qssm", {"num_bits": 1, "num_bits_feat": 8, "activation": "modrelu"}),
        ("qrnn", {"num_bits": 2}),
        ("spectralqssm", {"use_bjorck": True}),
        ("spectralqssm", {"num_bits": None}),
        ("qssmwithembeddings", {"input_size": 4, "output_size": 1, "vocab_size": 30}),
    ],
)
def test_export_round_trip(name, overrides, tmp_path):
    config = to_dict(ModelConfig(name=name, hidden_size=8, **overrides))
    torch.manual_seed(9)
    model = exporting.build(name, config).eval()
    path = export.save_binary(
        model, tmp_path / "m.bnn", package="hadamrnn", model_class=name, config=config
    )
    reloaded = export.load(path)
    x = torch.randint(1, 30, (3, 7)) if model.embedding is not None else torch.randn(3, 7, 1)
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))
        assert torch.equal(model.recurrent.weight(), reloaded.recurrent.weight())
    bits = overrides.get("num_bits", 4)
    packed = export.packed_entries(model)
    assert ("recurrent.latent" in packed) == (bits is not None)


def test_export_summary_reads_token_ids_for_qssm_with_embeddings():
    cfg = load(None, ["MODEL.NAME=qssmwithembeddings", "DATASET.NAME=imdb"])
    assert exporting.summary_kwargs(cfg) == {"input_size": (500,), "dtypes": [torch.long]}

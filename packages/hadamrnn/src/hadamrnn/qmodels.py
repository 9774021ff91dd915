"""The reference's other models (HEAD of ``deel-ai-papers/hadamRNN``, spec B.2): QRNN, QSSM,
QSSMwithEmbeddings and SpectralQSSM, with a quantized dense recurrent matrix.

Notation: ``Q_b`` is the HadamRNN weight quantizer (:func:`bnn_shared.quantizers.uniform`:
per-tensor max-abs scale, ``b`` bits, identity STE), ``sigma`` the model's activation
(``MODEL.ACTIVATION``: ReLU or :class:`~hadamrnn.extra_layers.ModReLU`), ``h_0 = 0``.

* :class:`QRNN` (``qrnn``): ``h_t = sigma(Q_b(W) h_(t-1) + b + U x_t)``, NON-linear, so it
  runs on the sequential engine only; ``y = V h_T + c`` (or ``y_t = V h_t + c``).
* :class:`QSSM` (``qssm``): ``h_t = Q_b(W) h_(t-1) + b + U x_t``, linear (both engines);
  ``y = V sigma(h_T) + c``. With ``num_bits_feat``, every step first quantizes
  ``x_t <- Q_in(x_t)`` and ``h_(t-1) <- Q_h(h_(t-1))`` (stats quantizers,
  :class:`~hadamrnn.extra_layers.StatsQuantizer`); that recurrence is not linear any more
  and runs its own sequential loop.
* :class:`QSSMwithEmbeddings` (``qssmwithembeddings``): an embedding table
  ``(vocab_size, d_in)`` (``padding_idx`` 0, ``N(0, 1)``, float; the reference hard-codes
  10000 rows and ignores ``VOCAB_SIZE``, here honoured, default 10000) feeding a QSSM.
* :class:`SpectralQSSM` (``spectralqssm``): a QSSM whose ``W`` is spectrally normalised
  (power iteration), optionally Björck-orthonormalised (``use_bjorck``), then quantized
  (:class:`SpectralRecurrent`; the reference uses deel-torchlip's ``SpectralLinear``).

``U`` is a float :class:`~hadamrnn.quantized_layers.QLinear` (Xavier-uniform, orthogonal if
square); ``V`` a float ``nn.Linear`` (QSSM with ``qoutput``: a float ``QLinear``, Xavier).
``num_bits=None`` is a float ``W`` everywhere: the reference's defaults (``NUM_BITS`` 0 for
QRNN, an unconditional quantizer in SpectralQSSM) degenerate or crash there.
"""

from __future__ import annotations

import math
import sys

import torch
from bnn_shared.errors import ConfigError
from bnn_shared.export import Packed
from bnn_shared.quantizers import uniform
from torch import Tensor, nn

from .arithmetic import current_arithmetic
from .extra_layers import StatsQuantizer
from .models import LinearRNN
from .quantized_layers import (
    PACKABLE_BITS,
    LinearRecurrence,
    QLinear,
    bjorck,
    uniform_precision,
)

__all__ = [
    "QRNN",
    "QSSM",
    "QSSMwithEmbeddings",
    "QuantizedRecurrent",
    "SpectralQSSM",
    "SpectralRecurrent",
    "power_iteration",
    "sequential_only",
]


# -- recurrent layers ---------------------------------------------------------------------------


class QuantizedRecurrent(nn.Module):
    """Recurrent matrix ``W = Q_b(latent)`` (reference ``QLinear(n, n, bias, num_bits)``).

    Init: ``latent`` orthogonal; ``b`` ``U(-1/sqrt(n), 1/sqrt(n))`` (``nn.Linear``'s default).

    Args:
        hidden_size: ``n``.
        bits: bit width of ``W`` (1..16), or None for a float ``W``.
        bias: train a float recurrent bias ``b``.
    """

    def __init__(self, hidden_size: int, bits: int | None = 4, *, bias: bool = True):
        super().__init__()
        self.hidden_size = hidden_size
        self.bits = bits
        self.latent = nn.Parameter(torch.empty(hidden_size, hidden_size))
        nn.init.orthogonal_(self.latent)
        bound = 1 / math.sqrt(hidden_size)
        self.bias = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound)) if bias else None
        self.latent_is_quantized = False  # True once latent holds W itself (packed_loaded)

    @property
    def weight_precision(self) -> int:
        """Bits per entry of ``W`` (2 for ternary ``bits=1``, 32 for a float ``W``)."""
        return uniform_precision(self.bits)

    def param_precisions(self) -> dict[str, int]:
        """``latent`` ships as ``W`` at ``weight_precision``; the bias is float."""
        return {"latent": self.weight_precision}

    def _quantize(self, weight: Tensor) -> Tensor:
        return weight if self.bits is None else uniform(weight, self.bits)

    def weight(self) -> Tensor:
        """``W`` as the forward uses it."""
        if self.latent_is_quantized:
            return self.latent
        return self._quantize(self.latent)

    def quantized_weight(self) -> Tensor:
        """``W`` (without side effects)."""
        return self.weight()

    def packed_state(self) -> dict[str, Packed]:
        """``{"latent": Packed(W, bits)}``; a float or wider than 8-bit ``W`` stays float."""
        if self.bits is None or self.weight_precision > PACKABLE_BITS:
            return {}
        return {"latent": Packed(self.quantized_weight().detach(), self.weight_precision)}

    def packed_loaded(self) -> None:
        """``latent`` now holds ``W`` itself: use it unchanged (re-quantizing is not
        idempotent)."""
        if self.packed_state():
            self.latent_is_quantized = True

    def recurrence(self, input_weight: Tensor) -> LinearRecurrence:
        weight = self.weight()
        transposed = weight.t()
        return LinearRecurrence(weight, lambda h: h @ transposed, input_weight, self.bias)

    def apply_constraints_(self) -> None:
        pass

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, bits={self.bits}"


@torch.no_grad()
def power_iteration(
    weight: Tensor, vector: Tensor, *, iterations: int = 10, eps: float = 1e-3
) -> Tensor:
    """Right singular vector of the largest singular value: ``v <- W^T W v / |W^T W v|``,
    from ``vector``, until ``|v_new - v| < eps`` or ``iterations`` steps (no gradient)."""
    for _ in range(iterations):
        new = weight.t() @ (weight @ vector)
        new = new / new.norm().clamp_min(1e-12)
        done = (new - vector).norm() < eps
        vector = new
        if done:
            break
    return vector


class SpectralRecurrent(QuantizedRecurrent):
    """SpectralQSSM's ``W = Q_b(bjorck(latent / sigma))`` (Björck only with ``use_bjorck``).

    ``sigma = |latent v|`` with ``v`` a persistent power-iteration vector (buffer
    ``power_vector``), refined at every training forward by :func:`power_iteration` (at most
    ``power_iterations`` steps, tolerance ``eps``, as deel-torchlip's ``SpectralLinear``). The
    gradient flows through ``latent`` in ``sigma`` too (``v`` held fixed), as in
    ``torch.nn.utils.spectral_norm``. Björck: ``bjorck_iterations`` fixed steps of
    ``W <- W (3 I - W^T W) / 2`` (:func:`~hadamrnn.quantized_layers.bjorck`; torchlip
    iterates to a tolerance). Init as torchlip: ``latent`` orthogonal, ``b = 0``.

    Args:
        hidden_size: ``n``.
        bits: bit width of ``W``, None for float (the reference requires bits).
        bias: float recurrent bias.
        use_bjorck: Björck orthonormalisation after the spectral normalisation.
        power_iterations, eps: power-iteration budget per training forward and tolerance.
        bjorck_iterations: Björck steps per forward.
    """

    def __init__(
        self,
        hidden_size: int,
        bits: int | None = 4,
        *,
        bias: bool = True,
        use_bjorck: bool = False,
        power_iterations: int = 10,
        eps: float = 1e-3,
        bjorck_iterations: int = 15,
    ):
        super().__init__(hidden_size, bits, bias=bias)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self.use_bjorck = use_bjorck
        self.power_iterations = power_iterations
        self.eps = eps
        self.bjorck_iterations = bjorck_iterations
        vector = torch.randn(hidden_size)
        self.register_buffer("power_vector", vector / vector.norm())

    def weight(self, *, update: bool = False) -> Tensor:
        """``W``; with ``update`` (training forwards) the power iteration advances first."""
        if self.latent_is_quantized:
            return self.latent
        if update:
            vector = power_iteration(
                self.latent.detach(),
                self.power_vector,
                iterations=self.power_iterations,
                eps=self.eps,
            )
            self.power_vector.copy_(vector)
        sigma = (self.latent @ self.power_vector).norm().clamp_min(1e-12)
        weight = self.latent / sigma
        if self.use_bjorck:
            weight = bjorck(weight, self.bjorck_iterations)
        return self._quantize(weight)

    def recurrence(self, input_weight: Tensor) -> LinearRecurrence:
        weight = self.weight(update=self.training)
        transposed = weight.t()
        return LinearRecurrence(weight, lambda h: h @ transposed, input_weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, use_bjorck={self.use_bjorck}"


# -- models -------------------------------------------------------------------------------------


def sequential_only(model: str, engine: str, explicit: bool, why: str) -> str:
    """The engine of a non-linear recurrence: ``"sequential"``, after a one-line warning on
    stderr when the config named another one explicitly (``MODEL.ENGINE``)."""
    if engine != "sequential" and explicit:
        print(
            f"warning: MODEL.ENGINE {engine} does not apply to {model}: {why} makes the "
            "recurrence non-linear; the sequential engine runs it",
            file=sys.stderr,
        )
    return "sequential"


def _float_output(hidden: int, output_size: int, bias: bool, xavier: bool) -> nn.Module:
    """``V``: a float ``QLinear`` (Xavier) or an ``nn.Linear`` (default init)."""
    if xavier:
        return QLinear(hidden, output_size, bias=bias, bits=None)
    return nn.Linear(hidden, output_size, bias=bias)


class QSSM(LinearRNN):
    """Linear recurrence with a quantized dense ``W`` (reference ``QSSM``; module docstring).

    Args:
        input_size, hidden_size, output_size: ``d_in`` (embedding size for tokens), ``n``,
            ``d_out``.
        num_bits: bits of ``W`` (None: float).
        bias, bias_final: recurrent bias ``b``, output bias ``c``.
        qoutput: ``V`` is a float ``QLinear`` (Xavier init) instead of an ``nn.Linear``.
        num_bits_feat: bits of the input and state quantizers (None: none); forces the
            sequential loop.
        pre_scaling_feat: pre-scale of the state quantizer (not divided back, as the
            reference).
        recurrent: the recurrent layer (default :class:`QuantizedRecurrent`).
        **kwargs: ``many_to_many``, ``vocab_size``, ``embeddings_dropout``, ``readout``,
            ``linear_recurrent``, ``engine``, ``activation`` as :class:`LinearRNN`.
    """

    def __init__(
        self,
        *,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_bits: int | None = 4,
        bias: bool = True,
        bias_final: bool = True,
        qoutput: bool = True,
        num_bits_feat: int | None = None,
        pre_scaling_feat: float = 1.0,
        recurrent: nn.Module | None = None,
        **kwargs,
    ):
        if recurrent is None:
            recurrent = QuantizedRecurrent(hidden_size, num_bits, bias=bias)
        output = _float_output(hidden_size, output_size, bias_final, qoutput)
        if num_bits_feat is not None:
            kwargs["engine"] = "sequential"
        super().__init__(
            recurrent,
            input_size=input_size,
            output_size=output_size,
            num_bits=None,
            bias_final=bias_final,
            output_layer=output,
            **kwargs,
        )
        self.input_quantizer = self.state_quantizer = None
        if num_bits_feat is not None:
            self.input_quantizer = StatsQuantizer(num_bits_feat)
            self.state_quantizer = StatsQuantizer(num_bits_feat, pre_scaling=pre_scaling_feat)

    def hidden_states(self, x: Tensor, *, all_states: bool = True, **kwargs) -> Tensor:
        """As :meth:`LinearRNN.hidden_states`; with ``num_bits_feat``, the quantized loop."""
        if self.input_quantizer is None:
            return super().hidden_states(x, all_states=all_states, **kwargs)
        if kwargs.get("input_quantizer") is not None or kwargs.get("state_quantizer") is not None:
            raise ConfigError(
                "this QSSM quantizes its activations itself (MODEL.NUM_BITS_FEAT): no other "
                "activation quantizers"
            )
        return self._quantized_states(self.embed(x), all_states)

    def _quantized_states(self, inputs: Tensor, all_states: bool) -> Tensor:
        """``h_t = W Q_h(h_(t-1)) + b + U Q_in(x_t)`` (then ``sigma`` if not linear)."""
        rec = self.recurrent.recurrence(self.input_layer.quantized_weight())
        arithmetic = current_arithmetic()
        linear = nn.functional.linear if arithmetic is None else arithmetic.linear
        h = inputs.new_zeros(inputs.shape[0], rec.weight.shape[0])
        states = []
        for x_t in inputs.unbind(1):
            x_t = self.input_quantizer(x_t)
            h = linear(self.state_quantizer(h), rec.weight, rec.bias) + linear(
                x_t, rec.input_weight
            )
            if not self.linear_recurrent:
                h = self.sigma(h)
            if all_states:
                states.append(h)
        return torch.stack(states, 1) if all_states else h


class QSSMwithEmbeddings(QSSM):
    """:class:`QSSM` over token ids: ``Embedding(vocab_size, input_size, padding_idx=0)``
    first (``N(0, 1)`` init, float). ``vocab_size`` defaults to the reference's 10000."""

    def __init__(self, *, vocab_size: int | None = 10000, **kwargs):
        super().__init__(vocab_size=10000 if vocab_size is None else vocab_size, **kwargs)


class SpectralQSSM(QSSM):
    """:class:`QSSM` whose ``W`` is a :class:`SpectralRecurrent` (spectral normalisation, Björck
    with ``use_bjorck``, then ``num_bits`` quantization; None: float).

    Args:
        use_bjorck: Björck orthonormalisation (reference ``QSpectralLinear``; default off,
            reference ``QSpectralLinearNoBjorck``).
        **kwargs: as :class:`QSSM`.
    """

    def __init__(
        self,
        *,
        hidden_size: int,
        num_bits: int | None = 4,
        bias: bool = True,
        use_bjorck: bool = False,
        **kwargs,
    ):
        recurrent = SpectralRecurrent(hidden_size, num_bits, bias=bias, use_bjorck=use_bjorck)
        super().__init__(
            hidden_size=hidden_size, num_bits=num_bits, bias=bias, recurrent=recurrent, **kwargs
        )


class QRNN(LinearRNN):
    """Vanilla RNN with a quantized ``W`` (reference ``QRNN``):
    ``h_t = sigma(Q_b(W) h_(t-1) + b + U x_t)``, ``y = V h_T + c`` (no activation at the
    read-out: ``h`` is already activated). Sequential engine only.

    Args:
        input_size, hidden_size, output_size, num_bits, bias, bias_final: as :class:`QSSM`.
        **kwargs: ``many_to_many``, ``vocab_size``, ``embeddings_dropout``, ``readout``,
            ``activation`` as :class:`LinearRNN`.
    """

    def __init__(
        self,
        *,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_bits: int | None = 4,
        bias: bool = True,
        bias_final: bool = True,
        **kwargs,
    ):
        for fixed in ("engine", "linear_recurrent", "output_layer"):
            if fixed in kwargs:
                raise ConfigError(f"QRNN: {fixed} is fixed (a non-linear sequential recurrence)")
        super().__init__(
            QuantizedRecurrent(hidden_size, num_bits, bias=bias),
            input_size=input_size,
            output_size=output_size,
            num_bits=None,
            bias_final=bias_final,
            linear_recurrent=False,
            engine="sequential",
            output_layer=nn.Linear(hidden_size, output_size, bias=bias_final),
            **kwargs,
        )

    def read_out(self, h: Tensor) -> Tensor:
        """``V h + c``."""
        return self.output_layer(h)

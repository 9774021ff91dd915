"""Integer-only HadamRNN inference, built from a trained model by post-training quantization.

:class:`IntegerHadamRNN` holds only integers: the signs ``sigma`` of ``s`` (int8, ±1), the
k-bit codes of ``U`` and ``V`` (``U_q = U_codes * step_U``), and fixed-point constants. With
``X_t`` the ``b_x``-bit input codes (``x_t ~ X_t * a_x / c_x``, ``c = 2^(bits-1)``) and
``H_t`` the ``b_h``-bit state codes (``h_t ~ H_t * a_h / c_h``), one step is

    A   = sigma * FWHT(H_(t-1))                       integer Walsh–Hadamard transform (±1)
    P   = M_w * A + M_u * (U_codes X_t) + B           int64 accumulator
    H_t = clamp(round(P / 2^S), -c_h, c_h - 1)        rounding right shift, ties to even

and the read-out is ``L = 2^F * V_codes ReLU(H_T) + C`` (int64 logits; many-to-many: every
step). The fixed-point constants fold the scales: ``M_w = round(2^S / sqrt(m))`` (``m`` the
Hadamard block size: the 1/sqrt(m) normalisation of ``W``), ``M_u = round(2^S * step_U *
(a_x / c_x) / (a_h / c_h))``, ``B = round(2^S * b / (a_h / c_h))``, ``C = round(2^F * c /
(step_V * a_h / c_h))``. The activation scales ``a_x``, ``a_h`` are powers of two
(calibrated maxima rounded up). ``S`` and ``F`` are the largest shifts (at most 40 and 16)
that keep every accumulator below 2^52.

:meth:`IntegerHadamRNN.reference` gives the same computation in the package's float model:
a float64 copy of the :class:`~hadamrnn.models.LinearRNN` whose weights are the fixed-point
values (``W = sigma H M_w / 2^S``, ...) run by the ``sequential`` engine with the
calibrated :class:`~hadamrnn.extra_layers.ActivationQuantizer`\\ s. Every value it computes is
an exact dyadic number, so its logits are exactly ``lambda * L`` (``lambda`` a power of two)
and its predictions equal the integer model's on every input. The float32 fake-quantized
model with the exact weights (the ``ptq`` evaluation) differs from both by the fixed-point
rounding of the constants and by float32 rounding; ``python -m hadamrnn.ptq --integer``
measures that agreement.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import torch
from bnn_shared.errors import CheckpointError, ConfigError, ShapeError
from bnn_shared.quantizers import sign, uniform
from bnn_shared.tracking import atomic_save
from torch import Tensor

from .extra_layers import ActivationQuantizer
from .models import LinearRNN
from .quantized_layers import HadamardRecurrent, QLinear

__all__ = ["IntegerHadamRNN", "fwht_int", "load_integer_model", "power_of_two_at_least"]

FORMAT = "hadamrnn.integer"
VERSION = 1
#: Every accumulator stays below this, so that float64 computes the same integers exactly.
EXACT_LIMIT = 2**52
MAX_SHIFT, MAX_LOGIT_SHIFT, MIN_SHIFT = 40, 16, 8


def power_of_two_at_least(value: float) -> float:
    """The smallest power of two ``>= value`` (1 for ``value <= 0``)."""
    return 2.0 ** math.ceil(math.log2(value)) if value > 0 else 1.0


def fwht_int(x: Tensor, block: int) -> Tensor:
    """``x @ H`` for integer ``x`` with ``H`` the unnormalised (±1) Sylvester Hadamard matrix,
    block-diagonal by blocks of ``block`` on the last axis: ``log2(block)`` butterfly stages
    of additions and subtractions."""
    n = x.shape[-1]
    y = x.reshape(-1, n // block, block)
    half = 1
    while half < block:
        y = y.reshape(y.shape[0], n // block, block // (2 * half), 2, half)
        low, high = y[..., 0, :], y[..., 1, :]
        y = torch.stack((low + high, low - high), dim=-2)
        half *= 2
    return y.reshape(x.shape)


def _round_shift(value: Tensor, shift: int) -> Tensor:
    """``round(value / 2^shift)`` of an int64 tensor, ties to even (as ``torch.round``)."""
    if shift == 0:
        return value
    floor = value >> shift
    rest = value - (floor << shift)
    half = 1 << (shift - 1)
    return floor + ((rest > half) | ((rest == half) & (floor & 1).bool())).long()


def _codes(layer: QLinear) -> tuple[Tensor, float]:
    """Integer codes ``k`` and step ``d`` of a k-bit layer: ``quantized_weight() = k * d``.

    The step is ``max|W| / c`` (``c = 2^(bits-1)``; ``max|q(W)| / (c - 1)`` is tried too for
    a layer whose weight already holds ``q(W)`` with its largest entry positive)."""
    if layer.bits is None:
        raise ConfigError("integer PTQ needs quantized U and V (MODEL.NUM_BITS, MODEL.QOUTPUT)")
    with torch.no_grad():
        q = layer.quantized_weight().detach().double()
    c = 2 ** (layer.bits - 1)
    if not layer.weight_is_quantized:  # the quantizer's own scale: alpha = max|W|
        alpha = float(layer.weight.detach().abs().max())
        step = (alpha if alpha > 0 else 1.0) / c
        return torch.round(q / step).long(), step
    top = float(q.abs().max())
    if top == 0:
        return torch.zeros_like(q, dtype=torch.long), 1.0
    best = None
    for count in (c, c - 1) if c > 1 else (1,):
        step = top / count
        codes = torch.round(q / step)
        error = float((codes * step - q).abs().max())
        if best is None or error < best[0]:
            best = (error, codes.long(), step)
    return best[1], best[2]


def _check_model(model: Any) -> None:
    if not isinstance(model, LinearRNN) or not isinstance(model.recurrent, HadamardRecurrent):
        raise ConfigError("integer PTQ needs a HadamRNN model (MODEL.NAME hadamrnn)")
    if not model.linear_recurrent:
        raise ConfigError("integer PTQ needs a linear recurrence (MODEL.LINEAR_RECURRENT true)")
    if model.readout != "last_position" and not model.many_to_many:
        raise ConfigError(f"integer PTQ reads out the last position, not {model.readout!r}")


class IntegerHadamRNN(torch.nn.Module):
    """A HadamRNN whose inference uses integers only (see the module docstring).

    Build it with :meth:`from_model`; ``meta`` holds the plain constants (bits, shifts,
    multipliers, scales) and the buffers the integer tensors.
    """

    TENSORS = ("signs", "input_codes", "recurrent_bias", "output_codes", "output_bias")

    def __init__(self, meta: dict[str, Any], tensors: dict[str, Tensor]):
        super().__init__()
        self.meta = dict(meta)
        for name in (*self.TENSORS, "embedding_codes"):
            value = tensors.get(name)
            if value is None and name != "embedding_codes":
                raise CheckpointError(f"integer model: missing tensor {name!r}")
            self.register_buffer(name, value)

    # -- construction ----------------------------------------------------------------------

    @classmethod
    @torch.no_grad()
    def from_model(
        cls,
        model: LinearRNN,
        *,
        input_bits: int,
        state_bits: int,
        input_max: float,
        state_max: float,
    ) -> IntegerHadamRNN:
        """Integer model of a trained HadamRNN with ``input_bits``-bit inputs and
        ``state_bits``-bit states; the scales are ``input_max`` and ``state_max`` (calibrated
        maxima) rounded up to powers of two.

        Raises:
            ConfigError: not a HadamRNN with quantized U and V, bits outside 2..24, or bits
                too wide for 52-bit accumulators.
        """
        _check_model(model)
        for name, bits in (("input", input_bits), ("state", state_bits)):
            if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 24:
                raise ConfigError(f"integer PTQ: {name} bits must be in 2..24, got {bits!r}")
        rec = model.recurrent
        u_codes, u_step = _codes(model.input_layer)
        v_codes, v_step = _codes(model.output_layer)
        c_x, c_h = 2 ** (input_bits - 1), 2 ** (state_bits - 1)
        a_x, a_h = power_of_two_at_least(input_max), power_of_two_at_least(state_max)
        d_x, d_h = a_x / c_x, a_h / c_h
        bias = rec.bias.double() if rec.bias is not None else torch.zeros(rec.hidden_size).double()
        out_bias = model.output_layer.bias
        out_bias = out_bias.double() if out_bias is not None else torch.zeros(len(v_codes)).double()
        drive = int(u_codes.abs().sum(1).max()) * c_x  # largest |U_codes X_t|
        for shift in range(MAX_SHIFT, MIN_SHIFT - 1, -1):
            m_w = round(2**shift / math.sqrt(rec.block))
            m_u = round(2**shift * u_step * d_x / d_h)
            b_int = torch.round(bias * (2**shift / d_h)).long()
            bound = m_w * rec.block * c_h + m_u * drive + int(b_int.abs().max())
            if bound < EXACT_LIMIT:
                break
        else:
            raise ConfigError(f"integer PTQ: {state_bits}-bit states overflow 52-bit accumulators")
        readout = int(v_codes.abs().sum(1).max()) * c_h
        for logit_shift in range(MAX_LOGIT_SHIFT, -1, -1):
            c_int = torch.round(out_bias * (2**logit_shift / (v_step * d_h))).long()
            if 2**logit_shift * readout + int(c_int.abs().max()) < EXACT_LIMIT:
                break
        else:
            raise ConfigError(f"integer PTQ: {state_bits}-bit states overflow 52-bit logits")
        meta = {
            "hidden_size": rec.hidden_size,
            "block": rec.block,
            "input_size": model.input_layer.in_features,
            "output_size": model.output_layer.out_features,
            "many_to_many": bool(model.many_to_many),
            "input_bits": input_bits,
            "state_bits": state_bits,
            "input_scale": a_x,
            "state_scale": a_h,
            "shift": shift,
            "recurrent_multiplier": m_w,
            "input_multiplier": m_u,
            "logit_shift": logit_shift,
            "logit_scale": v_step * d_h / 2**logit_shift,
        }
        tensors = {
            "signs": sign(rec.s.detach()).reshape(-1).to(torch.int8),
            "input_codes": _small_int(u_codes),
            "recurrent_bias": b_int,
            "output_codes": _small_int(v_codes),
            "output_bias": c_int,
            "embedding_codes": None,
        }
        if model.embedding is not None:
            table = model.embedding.weight.detach()
            codes = uniform(table, input_bits, scale=a_x) * (c_x / a_x)
            tensors["embedding_codes"] = _small_int(codes.long())
        return cls(meta, tensors)

    # -- inference -------------------------------------------------------------------------

    def input_codes_of(self, x: Tensor) -> Tensor:
        """The int64 input codes ``(B, T, d)`` of float inputs or token ids: the core's
        quantizer with the power-of-two scale (exact), or the embedding table's codes."""
        if self.embedding_codes is not None:
            if x.is_floating_point():
                raise ShapeError("this integer model reads token ids, got float inputs")
            return self.embedding_codes[x].long()
        if x.dim() != 3 or x.shape[-1] != self.meta["input_size"]:
            raise ShapeError(
                f"inputs must be (batch, steps, {self.meta['input_size']}), got {tuple(x.shape)}"
            )
        bits, scale = self.meta["input_bits"], self.meta["input_scale"]
        c_x = 2 ** (bits - 1)
        return (uniform(x.float(), bits, scale=scale) * (c_x / scale)).long()

    @torch.no_grad()
    def integer_logits(self, x: Tensor) -> Tensor:
        """int64 logits ``L`` ``(B, d_out)`` (many-to-many: ``(B, T, d_out)``)."""
        codes = self.input_codes_of(x)
        meta = self.meta
        c_h = 2 ** (meta["state_bits"] - 1)
        signs = self.signs.long()
        u_t = self.input_codes.long().t()
        v_t = self.output_codes.long().t()
        h = torch.zeros(codes.shape[0], meta["hidden_size"], dtype=torch.long)
        states = []
        for x_t in codes.unbind(1):
            acc = meta["recurrent_multiplier"] * (fwht_int(h, meta["block"]) * signs)
            acc += meta["input_multiplier"] * _int_matmul(x_t, u_t) + self.recurrent_bias
            h = _round_shift(acc, meta["shift"]).clamp_(-c_h, c_h - 1)
            if meta["many_to_many"]:
                states.append(h)
        readout = torch.stack(states, 1) if meta["many_to_many"] else h
        return (_int_matmul(readout.clamp(min=0), v_t) << meta["logit_shift"]) + self.output_bias

    def forward(self, x: Tensor) -> Tensor:
        """Approximate float logits ``L * logit_scale`` (for losses; predictions use ``L``)."""
        return self.integer_logits(x).double() * self.meta["logit_scale"]

    def predict(self, x: Tensor) -> Tensor:
        """Predicted classes: arg-max of ``L`` (``L > 0`` for one output)."""
        logits = self.integer_logits(x)
        return (logits[..., 0] > 0).long() if logits.shape[-1] == 1 else logits.argmax(-1)

    # -- the same computation in the float model -------------------------------------------

    @torch.no_grad()
    def reference(self, model: LinearRNN):
        """``(reference_model, input_quantizer, state_quantizer, lam)``: a float64 copy of
        ``model`` with the fixed-point weights; ``reference_model(x.double(),
        input_quantizer=..., state_quantizer=...)`` equals ``lam * integer_logits(x)``."""
        meta = self.meta
        shift, d_h = 2.0 ** -meta["shift"], meta["state_scale"] / 2 ** (meta["state_bits"] - 1)
        d_x = meta["input_scale"] / 2 ** (meta["input_bits"] - 1)
        lam = (
            power_of_two_at_least(meta["logit_scale"] * 2 ** meta["logit_shift"])
            / 2 ** (meta["logit_shift"])
        )
        ref = copy.deepcopy(model).double().eval()
        block = meta["block"]
        plus_minus = torch.round(ref.recurrent.hadamard.double() * math.sqrt(block))
        ref.recurrent.hadamard = plus_minus * (meta["recurrent_multiplier"] * shift)
        if ref.recurrent.bias is not None:
            ref.recurrent.bias.copy_(self.recurrent_bias.double() * (shift * d_h))
        ref.input_layer.weight.copy_(
            self.input_codes.double() * (meta["input_multiplier"] * shift * d_h / d_x)
        )
        ref.output_layer.weight.copy_(
            self.output_codes.double() * (lam * 2 ** meta["logit_shift"] / d_h)
        )
        if ref.output_layer.bias is not None:
            ref.output_layer.bias.copy_(self.output_bias.double() * lam)
        ref.input_layer.weight_is_quantized = ref.output_layer.weight_is_quantized = True
        quantizers = []
        for bits, scale in ((meta["input_bits"], d_x), (meta["state_bits"], d_h)):
            quantizer = ActivationQuantizer(bits).double()
            quantizer.max_abs.fill_(scale * 2 ** (bits - 1))
            quantizers.append(quantizer)
        return ref, quantizers[0], quantizers[1], lam

    # -- files -----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the integer model (``torch.save`` of plain values and integer tensors)."""
        tensors = {name: getattr(self, name) for name in (*self.TENSORS, "embedding_codes")}
        payload = {"format": FORMAT, "version": VERSION, "meta": self.meta, "tensors": tensors}
        path = Path(path)
        atomic_save(payload, path)
        return path


def load_integer_model(path: str | os.PathLike) -> IntegerHadamRNN:
    """Read a file written by :meth:`IntegerHadamRNN.save`.

    Raises:
        CheckpointError: missing, unreadable, or not an integer HadamRNN model.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no integer model at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is not an integer HadamRNN model ({reason})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an integer HadamRNN model")
    tensors = payload.get("tensors") or {}
    if any(t is not None and t.is_floating_point() for t in tensors.values()):
        raise CheckpointError(f"{path}: an integer model holds integer tensors only")
    return IntegerHadamRNN(payload["meta"], tensors).eval()


def _small_int(codes: Tensor) -> Tensor:
    """``codes`` in the smallest of int8, int16, int32 that holds them."""
    top = int(codes.abs().max()) if codes.numel() else 0
    for dtype in (torch.int8, torch.int16, torch.int32):
        if top < torch.iinfo(dtype).max:
            return codes.to(dtype)
    return codes.long()


def _int_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` on int64 (a product of one column is an outer product, cheaper)."""
    if a.shape[-1] == 1:
        return a * b[0]
    return a @ b

"""Copy task with the matmuls of an Ampere GPU's default arithmetic (TF32), emulated on CPU.

The reference trained on ``cuda:0`` with torch 1.10 (its notebook's environment). From torch
1.7 to 1.11 ``torch.backends.cuda.matmul.allow_tf32`` was on by default, so on an Ampere or
newer GPU every float32 matmul reads its inputs as TF32 (10 mantissa bits) and accumulates in
float32. Which GPU the authors used is not known here. For HadamRNN this matters more than
rounding noise usually does: all entries of ``W`` are ``±1/sqrt(n)``, so they round alike
and ``W`` is scaled by one factor (``1 - 1.07e-4`` for ``n = 128``, i.e. ``0.90`` over the
copy task's 990 steps), and the state ``h`` is rounded at each of the 1000 steps.

This script trains a config through ``python -m hadamrnn.train`` (so the files, flags and
``--resume`` are the usual ones) with every matmul of the model, forward and backward,
emulated that way: the quantized input and output layers and the sequential engine's loop
(``h = F.linear(h, W, b) + F.linear(x_t, U)``, as the reference writes it) compute with a
matmul on TF32-rounded operands, through the package's scoped hook
:func:`hadamrnn.use_arithmetic` (nothing of torch or of the package is patched; outside the
``with`` block everything is float32 again). Use it with the sequential engine, which the
script sets::

    python scripts/hadamrnn_copy_tf32.py [--rounding nearest|truncate] -- \\
        --config configs/hadamrnn/copy.yaml --out-dir runs/copy_tf32 [--resume] [--set ...]

On a CUDA GPU the real arithmetic needs no emulation: ``--set TRAIN.ALLOW_TF32=true`` with
``python -m hadamrnn.train``.

``--rounding``: how float32 becomes TF32: ``nearest`` (ties to even; the default) or
``truncate`` (towards zero; torch's numerical-accuracy notes say that "only the first 10 bits
of the input mantissa are read").
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from bnn_shared.cli import run_cli
from hadamrnn import Arithmetic, use_arithmetic
from hadamrnn.train import main as train_main
from torch import Tensor

#: float32 has 23 mantissa bits, TF32 keeps 10: the low 13 bits go.
DROPPED_BITS = 13


def to_tf32(x: Tensor, rounding: str = "nearest") -> Tensor:
    """``x`` (float32) rounded to TF32's 10-bit mantissa, returned as float32.

    Finite values only (the models here never produce inf or NaN in training).
    """
    bits = x.contiguous().view(torch.int32)
    low = (1 << DROPPED_BITS) - 1
    if rounding == "nearest":  # add half an ulp (minus one when the kept lsb is 0): ties to even
        keep_lsb = (bits >> DROPPED_BITS) & 1
        bits = bits + (low >> 1) + keep_lsb
    elif rounding != "truncate":
        raise ValueError(f"rounding must be nearest or truncate, got {rounding!r}")
    return (bits & ~low).view(torch.float32)


class _TF32Matmul(torch.autograd.Function):
    """``a @ b`` on TF32 operands, with the backward matmuls on TF32 operands too."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, rounding: str) -> Tensor:
        a, b = to_tf32(a, rounding), to_tf32(b, rounding)
        ctx.save_for_backward(a, b)
        ctx.rounding = rounding
        return a @ b

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b = ctx.saved_tensors
        grad = to_tf32(grad, ctx.rounding)
        grad_a = grad @ b.transpose(-1, -2) if ctx.needs_input_grad[0] else None
        grad_b = None
        if ctx.needs_input_grad[1]:
            grad_b = a.reshape(-1, a.shape[-1]).t() @ grad.reshape(-1, grad.shape[-1])
        return grad_a, grad_b, None


class _TF32Recurrence(torch.autograd.Function):
    """All states of ``h_t = W h_(t-1) + b + z_t`` (``h_0 = 0``) with one TF32 matmul per
    step, as the reference's loop of ``F.linear(h, W, b) + F.linear(x_t, U)`` computes them
    on such a GPU (``z = U x`` comes in precomputed). The backward runs the same loop in
    reverse, each step's matmul on TF32 operands; the gradient of ``W`` is one TF32 matmul
    over all steps (the per-step matmuls summed in float32)."""

    @staticmethod
    def forward(ctx, z: Tensor, weight: Tensor, bias: Tensor, rounding: str) -> Tensor:
        w_t = to_tf32(weight, rounding).t()
        inputs = z.transpose(0, 1).contiguous()  # time-major (T, B, n)
        states, rounded = torch.empty_like(inputs), torch.empty_like(inputs)
        h = inputs.new_zeros(inputs.shape[1:])
        for t in range(len(inputs)):  # (b + h W^T) + z_t, in the reference's order
            rounded[t] = to_tf32(h, rounding)
            h = torch.addmm(bias, rounded[t], w_t, out=states[t])
            h += inputs[t]
        ctx.save_for_backward(rounded, w_t)
        ctx.rounding = rounding
        return states.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        rounded, w_t = ctx.saved_tensors
        w = w_t.t()
        grad = grad.transpose(0, 1).contiguous()
        g_all, g_in_all = torch.empty_like(grad), torch.empty_like(grad)
        g = torch.zeros_like(grad[0])
        for t in range(len(grad) - 1, -1, -1):
            # dL/dh_t: from the read-out at t and from step t + 1
            g = torch.add(grad[t], g, out=g_all[t])
            g_in_all[t] = to_tf32(g, ctx.rounding)  # the operand of step t's backward matmuls
            g = g_in_all[t] @ w  # to h_(t-1)
        n = w.shape[0]
        grad_w = g_in_all.reshape(-1, n).t() @ rounded.reshape(-1, n)
        return g_all.transpose(0, 1), grad_w, g_all.sum((0, 1)), None


def tf32_arithmetic(rounding: str = "nearest") -> Arithmetic:
    """The package's matmul hook with every matmul, forward and backward, on TF32 operands."""

    def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        y = _TF32Matmul.apply(x, weight.t(), rounding)
        return y if bias is None else y + bias

    def recurrence(z: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        return _TF32Recurrence.apply(z, weight, bias, rounding)

    return Arithmetic(linear=linear, recurrence=recurrence)


@contextlib.contextmanager
def tf32_matmuls(rounding: str = "nearest"):
    """Within the block, the models' matmuls and the sequential engine run on TF32 operands."""
    with use_arithmetic(tf32_arithmetic(rounding)):
        yield


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        usage="%(prog)s [--rounding nearest|truncate] -- TRAIN_ARGS...",
    )
    parser.add_argument("--rounding", choices=["nearest", "truncate"], default="nearest")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="hadamrnn.train flags")
    args = parser.parse_args(argv)
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    with tf32_matmuls(args.rounding):
        return train_main([*train_args, "--set", "MODEL.ENGINE=sequential"]) or 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))

"""The fully connected networks of binary EP: binary weights with hardsigm activations
(:class:`NetworkFcBinW`) or with binary activations (:class:`NetworkFcBinWN`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from bnn_shared.errors import ShapeError
from torch import nn

from .dynamics import Context, EPNetwork, State, binarize_init_, binary_linear, leak
from .settings import Settings

__all__ = ["FCNetwork", "NetworkFcBinW", "NetworkFcBinWN"]

Tensor = torch.Tensor


class FCNetwork(EPNetwork):
    """What the fully connected networks share: layers ``W`` (output first), one scaling
    factor per layer, the input's drive and the EP gradient."""

    bptt_extra_step = 1
    flatten_input = True

    @classmethod
    def from_input(cls, cfg: Settings, input_shape: tuple[int, ...]) -> FCNetwork:
        """The network for inputs of ``input_shape`` (flattened), checked against
        ``--layersList``."""
        features = math.prod(input_shape)
        if cfg.layersList[0] != features:
            raise ShapeError(
                f"--layersList starts with {cfg.layersList[0]} inputs, but the {cfg.dataset} "
                f"images have {features} values"
            )
        return cls(cfg)

    def __init__(self, cfg: Settings):
        super().__init__(cfg)
        self.sizes = list(reversed(cfg.layersList))  # output first, input last
        self.W = nn.ModuleList()
        alphas = []
        with torch.no_grad():
            for i in range(len(self.sizes) - 1):
                binary_input = self.binary and i < len(self.sizes) - 2  # not the data
                self.W.append(binary_linear(self.sizes[i + 1], self.sizes[i], binary_input))
                alphas.append(binarize_init_(self.W[-1].weight, per_channel=False)[0])
        # a parameter that autograd does not train (learnt, if at all, by the EP rule), so
        # that the bit-aware summary counts it (float32, one per layer)
        self.alpha = nn.Parameter(torch.stack(alphas), requires_grad=False)
        self.make_optimizers()

    def weight_layers(self) -> list[nn.Module]:
        return list(self.W)

    def flip_settings(self) -> list[tuple[float, float]]:
        n = len(self.W)
        return list(zip(self.cfg.gamma[:n], self.cfg.gradThreshold[:n], strict=True))

    def alpha_values(self) -> list[float]:
        return [float(a) for a in self.alpha]

    def layer_macs(self) -> list[int]:
        return [lin.weight.numel() for lin in self.W]

    def prepare(self, data: Tensor) -> Context:
        last = self.W[-1]
        return Context(data=data, drive=F.linear(data, last.weight, last.bias))

    def init_hidden(self, data: Tensor) -> State:
        value = 1.0 if self.binary else 0.0
        like = {"device": data.device, "dtype": data.dtype}
        s = [torch.full((data.shape[0], n), value, **like) for n in self.sizes[:-1]]
        return State([*s, data])

    def _preactivation(self, a: list[Tensor], ctx: Context, layer: int) -> Tensor:
        """W_l a_{l+1} + b_l + a_{l-1} W_{l-1} (the input's drive is precomputed)."""
        last = len(self.W) - 1
        if layer == last:
            pre = ctx.drive
        else:
            lin = self.W[layer]
            pre = torch.addmm(lin.bias, a[layer + 1], lin.weight.t())
        if layer > 0:
            pre = torch.addmm(pre, a[layer - 1], self.W[layer - 1].weight)
        return pre

    def compute_gradient(self, nudged, free, ctx, beta):
        an, af = self.activations(nudged.s), self.activations(free.s)
        coef = 1.0 / (beta * ctx.data.shape[0])
        last = len(self.W) - 1
        alpha_grads = []
        with torch.no_grad():
            for i, lin in enumerate(self.W):
                diff = af[i] - an[i]
                if i == last:  # the input is the same in both phases
                    grad = torch.mm(diff.t(), ctx.data)
                else:
                    grad = torch.mm(af[i].t(), af[i + 1]).addmm_(an[i].t(), an[i + 1], alpha=-1)
                lin.weight.grad = grad.mul_(coef)
                lin.bias.grad = diff.sum(0).mul_(coef)
                if self.cfg.learnAlpha:
                    if i == last:
                        energy = -(diff * (ctx.drive - lin.bias)).sum()
                    else:
                        energy = (an[i] * F.linear(an[i + 1], lin.weight)).sum() - (
                            af[i] * F.linear(af[i + 1], lin.weight)
                        ).sum()
                    alpha_grads.append(0.5 * coef * energy)
        return alpha_grads


class NetworkFcBinW(FCNetwork):
    """Fully connected, binary weights, full-precision (hardsigm) activations.

    s_0 <- clamp(rho(W_0 s_1 + b_0) + beta (y - s_0), 0, 1);
    s_l <- clamp(rho(W_l s_{l+1} + b_l + s_{l-1} W_{l-1}), 0, 1). States start at 0.
    """

    def stepper(self, state, ctx, target=None, beta=0.0, pred=None):
        s = state.s
        inplace = not torch.is_grad_enabled()
        new = []
        for layer in range(len(self.W)):
            pre = self._preactivation(s, ctx, layer)
            if inplace and pre is not ctx.drive and self.cfg.activationFun == "hardsigm":
                out = pre.clamp_(0, 1)
            else:
                out = self.rho(pre)
            if layer == 0 and beta != 0:
                out = out + self.nudge(target, s[0], pred, beta)
                out = out.clamp_(0, 1) if inplace else out.clamp(0, 1)
            new.append(out)
        return State([*new, s[-1]])


class NetworkFcBinWN(FCNetwork):
    """Fully connected, binary weights and binary (heaviside) activations.

    Each neuron integrates its input, s <- clamp((1 - g) s + g rhop(s - theta) pre, 0, 1),
    and sends H(s - theta); pre_0 gets + beta (y - s_0) in the nudged phase. States start at
    1; the input stays full precision.
    """

    def activations(self, s):
        return [self.rho(x - self.theta) for x in s[:-1]] + [s[-1]]

    def stepper(self, state, ctx, target=None, beta=0.0, pred=None):
        s = state.s
        a = self.activations(s)
        new = []
        for layer in range(len(self.W)):
            pre = self._preactivation(a, ctx, layer)
            if not self.gate_is_one:
                pre = pre * self.rhop(s[layer] - self.theta)
            if layer == 0 and beta != 0:
                pre = pre + self.nudge(target, s[0], pred, beta)
            new.append(leak(s[layer], pre, self.gamma_neur))
        return State([*new, s[-1]])

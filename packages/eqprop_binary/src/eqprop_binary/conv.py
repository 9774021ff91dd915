"""The convolutional networks of binary EP: binary weights with hardsigm activations
(:class:`NetworkConvBinW`) or with binary activations (:class:`NetworkConvBinWN`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from bnn_shared import quantizers
from bnn_shared.errors import ShapeError
from torch import nn

from .dynamics import (
    Context,
    EPNetwork,
    State,
    binarize_init_,
    binary_conv2d,
    binary_linear,
    leak,
)
from .settings import Settings

__all__ = ["ConvNetwork", "NetworkConvBinW", "NetworkConvBinWN"]

Tensor = torch.Tensor


class ConvNetwork(EPNetwork):
    """What the convolutional networks share: conv layers (top first) with max-pooling,
    the classifier ``fc`` (output first), scaling factors and the EP gradient."""

    @classmethod
    def from_input(cls, cfg: Settings, input_shape: tuple[int, ...]) -> ConvNetwork:
        """The network for square images of ``input_shape`` ``(channels, height, width)``,
        checked against ``--convList``."""
        channels, height = input_shape[0], input_shape[-1]
        if cfg.convList[-1] != channels:
            raise ShapeError(
                f"--convList ends with {cfg.convList[-1]} input channel(s), but the "
                f"{cfg.dataset} images have {channels}"
            )
        return cls(cfg, height)

    def __init__(self, cfg: Settings, in_size: int):
        super().__init__(cfg)
        P, k, Fp = cfg.padding, cfg.kernelSize, cfg.Fpool
        self.P, self.k, self.F = P, k, Fp
        self.channels = list(cfg.convList)  # top conv first, input channels last
        n_conv = len(self.channels) - 1
        # sizes from the input up, then reversed to top first
        pool, conv = [in_size], []
        for _ in range(n_conv):
            c = pool[-1] + 2 * P - k + 1
            p = (c - Fp) // Fp + 1 if c >= Fp else 0
            if c < 1 or p < 1:
                raise ShapeError(
                    f"a {pool[-1]}x{pool[-1]} map does not survive a {k}x{k} convolution "
                    f"(padding {P}) and {Fp}x{Fp} pooling: use fewer conv layers, more "
                    "--padding, a smaller --kernelSize or --Fpool"
                )
            conv.append(c)
            pool.append(p)
        self.conv_sizes = conv[::-1]  # conv map size of conv[j] (top first)
        self.pool_sizes = pool[1:][::-1]  # state size of conv state j (top first)
        self.conv = nn.ModuleList()
        self.fc = nn.ModuleList()
        conv_alpha = []
        with torch.no_grad():
            for j in range(n_conv):
                binary_input = self.binary and j < n_conv - 1  # not the image
                self.conv.append(
                    binary_conv2d(self.channels[j + 1], self.channels[j], k, P, binary_input)
                )
                conv_alpha.append(binarize_init_(self.conv[-1].weight, per_channel=True))
                if self.binary:
                    nn.init.zeros_(self.conv[-1].bias)
            flat = self.channels[0] * self.pool_sizes[0] ** 2
            self.sizes = [*reversed(cfg.layersList), flat]  # classifier, output first
            fc_alpha = []
            for i in range(len(self.sizes) - 1):
                self.fc.append(binary_linear(self.sizes[i + 1], self.sizes[i], self.binary))
                fc_alpha.append(binarize_init_(self.fc[-1].weight, per_channel=False)[0])
                if self.binary:
                    nn.init.zeros_(self.fc[-1].bias)
        # parameters that autograd does not train (learnt, if at all, by the EP rule), so
        # that the bit-aware summary counts them (float32)
        self.fc_alpha = nn.Parameter(torch.stack(fc_alpha), requires_grad=False)
        for j, a in enumerate(conv_alpha):
            self.register_parameter(f"conv_alpha_{j}", nn.Parameter(a, requires_grad=False))
        self.make_optimizers()

    @property
    def nc(self) -> int:
        return len(self.fc)

    def weight_layers(self) -> list[nn.Module]:
        return [*self.fc, *self.conv]

    def flip_settings(self) -> list[tuple[float, float]]:
        cfg, nc, nv = self.cfg, len(self.fc), len(self.conv)
        fc = zip(cfg.classi_gamma[:nc], cfg.classi_threshold[:nc], strict=True)
        conv = zip(cfg.conv_gamma[:nv], cfg.conv_threshold[:nv], strict=True)
        return [*fc, *conv]

    def alpha_of(self, i: int) -> Tensor:
        """Scaling factors of weight layer i (fc first): a 1-element view or per channel."""
        nc = len(self.fc)
        return self.fc_alpha[i : i + 1] if i < nc else getattr(self, f"conv_alpha_{i - nc}")

    def alpha_values(self) -> list[float]:
        return [float(self.alpha_of(i).mean()) for i in range(len(self.weight_layers()))]

    def update_alpha(self, grads, lrs):
        for i, (layer, grad) in enumerate(zip(self.weight_layers(), grads, strict=True)):
            alphas = self.alpha_of(i)  # one value (classifier) or one per output channel
            alphas += lrs[i] * grad
            layer.weight.copy_(quantizers.scaled_sign(layer.weight, alphas, zero=0))

    def layer_macs(self) -> list[int]:
        fc = [lin.weight.numel() for lin in self.fc]
        conv = [c.weight.numel() * n * n for c, n in zip(self.conv, self.conv_sizes, strict=True)]
        return fc + conv

    def convolve(self, j: int, x: Tensor) -> Tensor:
        """conv ``j`` (top first) of ``x``, reading the layer's binary weight directly (as
        its forward would: same operation, but the relaxation's cost is counted by the
        network, :meth:`~EPNetwork.summary_macs`, not once per layer call)."""
        conv = self.conv[j]
        return F.conv2d(x, conv.weight, conv.bias, padding=self.P)

    def pool(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return F.max_pool2d(x, self.F, stride=self.F, return_indices=True)

    def unpool(self, x: Tensor, idx: Tensor, j: int) -> Tensor:
        size = self.conv_sizes[j]
        return F.max_unpool2d(x, idx, self.F, stride=self.F, output_size=(size, size))

    def prepare(self, data: Tensor) -> Context:
        pooled, idx = self.pool(self.convolve(len(self.conv) - 1, data))
        return Context(data=data, first_pool=pooled, first_idx=idx)

    def init_hidden(self, data: Tensor) -> State:
        value = 1.0 if self.binary else 0.5
        b, like = data.shape[0], {"device": data.device, "dtype": data.dtype}
        s = [torch.full((b, n), value, **like) for n in self.sizes[:-1]]
        for c, p in zip(self.channels[:-1], self.pool_sizes, strict=True):
            s.append(torch.full((b, c, p, p), value, **like))
        return State(s, [None] * len(s))

    def _preactivations(self, a: list[Tensor], ctx: Context) -> tuple[list[Tensor], list]:
        """Pre-activations of every state from the (sent) activations ``a``, and the
        pooling indices of this step."""
        nc, nv = len(self.fc), len(self.conv)
        pre = []
        for i in range(nc):
            lin = self.fc[i]
            x = torch.addmm(lin.bias, a[i + 1].flatten(1), lin.weight.t())
            if i > 0:
                x = torch.addmm(x, a[i - 1], self.fc[i - 1].weight)
            pre.append(x)
        inds: list[Tensor | None] = [None] * nc
        pooled = []
        for j in range(nv):
            if j == nv - 1:
                p, idx = ctx.first_pool, ctx.first_idx
            else:
                p, idx = self.pool(self.convolve(j, a[nc + j + 1]))
            pooled.append(p)
            inds.append(idx)
        for j in range(nv):
            if j == 0:
                top = torch.mm(a[nc - 1], self.fc[nc - 1].weight)
                feedback = top.view_as(pooled[0])
            else:
                up = self.unpool(a[nc + j - 1], inds[nc + j - 1], j - 1)
                feedback = F.conv_transpose2d(up, self.conv[j - 1].weight, padding=self.P)
            pre.append(pooled[j] + feedback)
        return pre, inds

    def compute_gradient(self, nudged, free, ctx, beta):
        an, af = self.activations(nudged.s), self.activations(free.s)
        coef = 1.0 / (beta * ctx.data.shape[0])
        nc, nv = len(self.fc), len(self.conv)
        learn = bool(self.cfg.learnAlpha)
        alpha_grads = []
        with torch.no_grad():
            for i, lin in enumerate(self.fc):
                bn, bf = an[i + 1].flatten(1), af[i + 1].flatten(1)
                grad = torch.mm(af[i].t(), bf).addmm_(an[i].t(), bn, alpha=-1)
                lin.weight.grad = grad.mul_(coef)
                lin.bias.grad = (af[i] - an[i]).sum(0).mul_(coef)
                if learn:
                    energy = (an[i] * F.linear(bn, lin.weight)).sum() - (
                        af[i] * F.linear(bf, lin.weight)
                    ).sum()
                    alpha_grads.append(coef * energy.reshape(1))
            for j, conv in enumerate(self.conv):
                k = nc + j
                un = self.unpool(an[k], nudged.inds[k], j)
                uf = self.unpool(af[k], free.inds[k], j)
                shape, pad = conv.weight.shape, self.P
                if j == nv - 1:  # the image is the same in both phases
                    grad = torch.nn.grad.conv2d_weight(ctx.data, shape, uf - un, padding=pad)
                else:
                    grad = torch.nn.grad.conv2d_weight(af[k + 1], shape, uf, padding=pad)
                    grad -= torch.nn.grad.conv2d_weight(an[k + 1], shape, un, padding=pad)
                conv.weight.grad = grad.mul_(coef)
                conv.bias.grad = (af[k] - an[k]).sum((0, 2, 3)).mul_(coef)
                if learn:
                    if j == nv - 1:
                        energy = ((an[k] - af[k]) * ctx.first_pool).sum((0, 2, 3))
                    else:
                        energy = (an[k] * self.pool(self.convolve(j, an[k + 1]))[0]).sum(
                            (0, 2, 3)
                        ) - (af[k] * self.pool(self.convolve(j, af[k + 1]))[0]).sum((0, 2, 3))
                    alpha_grads.append(coef * energy)
        return alpha_grads


class NetworkConvBinW(ConvNetwork):
    """Convolutional, binary weights, full-precision (hardsigm) activations.

    Conv states are rho(maxpool(conv(s_below)) + top-down feedback), the feedback going
    through the transposed convolution of the unpooled state above (the pooling indices of
    the same step); the classifier's output gets + beta (y - s_0), not clamped unless
    ``--clamp_output 1``. States start at 0.5.
    """

    def stepper(self, state, ctx, target=None, beta=0.0, pred=None):
        s = state.s
        pre, inds = self._preactivations(s, ctx)
        inplace = not torch.is_grad_enabled()
        hardsigm_ = inplace and self.cfg.activationFun == "hardsigm"
        new = [x.clamp_(0, 1) if hardsigm_ else self.rho(x) for x in pre]
        if beta != 0:
            new[0] = new[0] + self.nudge(target, s[0], pred, beta)
            if self.cfg.clamp_output:
                new[0] = new[0].clamp(0, 1)
        return State(new, inds)


class NetworkConvBinWN(ConvNetwork):
    """Convolutional, binary weights and binary (heaviside) activations.

    The leaky accumulator of the fc bin_W_N network on every state; every state is sent
    as H(s - theta), the image stays full precision. States start at 1, biases at 0, and
    the flip optimizer's momentum is seeded with noise 2 gamma N(0, 1), as in the reference.
    """

    noisy_momentum = True

    def activations(self, s):
        return [self.rho(x - self.theta) for x in s]

    def stepper(self, state, ctx, target=None, beta=0.0, pred=None):
        s = state.s
        pre, inds = self._preactivations(self.activations(s), ctx)
        new = []
        for i, (x, p) in enumerate(zip(s, pre, strict=True)):
            if not self.gate_is_one:
                p = p * self.rhop(x - self.theta)
            if i == 0 and beta != 0:
                p = p + self.nudge(target, s[0], pred, beta)
            new.append(leak(x, p, self.gamma_neur))
        return State(new, inds)

"""The four networks of binary Equilibrium Propagation, with the reference's steps.

Every network follows the discrete-time ("prototypical") dynamics: all layers are updated
synchronously from the previous step's states; the free phase runs ``T`` steps, the nudged
phase ``Kmax`` more from the free equilibrium with the output pulled towards the target by
``beta * (y - s_out)`` (added after the activation). Weights are ``alpha * sign(w)`` and
are trained by the flip optimizer :class:`bnn_shared.optim.Bop` fed with the one-sided EP
estimate ``1/(beta B) (s_beta^T s_beta - s_free^T s_free)``; biases by SGD; the scaling
factors ``alpha`` are fixed or learnt.

Conventions as in the reference: state ``s[0]`` is the output layer, ``W[0]`` (or
``fc[0]``) maps the last hidden layer to the output; conv states come after the classifier,
top conv layer first. Each class has the reference's steps: :meth:`init_hidden`,
:meth:`stepper`, :meth:`forward` (free phase with ``beta=0``, nudged phase otherwise),
:meth:`compute_gradient` and :meth:`update_weights`.

Speed: everything is batched; the relaxation runs under ``torch.no_grad()``; what does not
change between the steps of a batch is computed once per batch (:meth:`prepare`): the
clamped input's drive of the first hidden layer (fc) and the pooled first convolution of
the image with its pooling indices (conv).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from bnn_shared.errors import ShapeError
from bnn_shared.optim import Bop
from torch import nn

from .settings import Settings

__all__ = [
    "ACTIVATIONS",
    "State",
    "Context",
    "EPNetwork",
    "NetworkFcBinW",
    "NetworkFcBinWN",
    "NetworkConvBinW",
    "NetworkConvBinWN",
    "build_network",
]

Tensor = torch.Tensor


def hardsigm(x: Tensor) -> Tensor:
    return x.clamp(0, 1)


def hardsigm_prime(x: Tensor) -> Tensor:
    return ((x >= 0) & (x <= 1)).to(x.dtype)


def heaviside(x: Tensor) -> Tensor:
    """1 where x >= 0 (x = 0 maps to 1), else 0."""
    return (x >= 0).to(x.dtype)


def heaviside_prime(x: Tensor) -> Tensor:
    """The straight-through window: 1 where -0.5 <= x <= 0.5."""
    return ((x >= -0.5) & (x <= 0.5)).to(x.dtype)


#: activation name -> (rho, rhop, the interval where rhop is 1)
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor], tuple]] = {
    "hardsigm": (hardsigm, hardsigm_prime, (0.0, 1.0)),
    "heaviside": (heaviside, heaviside_prime, (-0.5, 0.5)),
}


@dataclass
class State:
    """Neuron states (output first) and, for conv nets, the pooling indices per state."""

    s: list[Tensor]
    inds: list[Tensor | None] = field(default_factory=list)

    def copy(self) -> State:
        return State(list(self.s), list(self.inds))


@dataclass
class Context:
    """What stays the same during the relaxation of one batch."""

    data: Tensor
    drive: Tensor | None = None  # fc: W_last x + b_last
    first_pool: Tensor | None = None  # conv: maxpool(conv_first(x))
    first_idx: Tensor | None = None


def _binarize_init_(weight: Tensor, per_channel: bool) -> Tensor:
    """XNOR-Net init: ``w = alpha * sign(w)``, alpha = mean |w| rounded to 4 decimals (one per
    layer, or one per output channel). Returns alpha (float32, one entry per channel)."""
    rows = weight.reshape(weight.shape[0], -1) if per_channel else weight.reshape(1, -1)
    alpha = torch.tensor(
        [round((row.abs().sum() / row.numel()).item(), 4) for row in rows], dtype=weight.dtype
    )
    shape = (-1,) + (1,) * (weight.dim() - 1) if per_channel else ()
    weight.copy_(torch.sign(weight) * alpha.reshape(shape))
    return alpha


class EPNetwork(nn.Module):
    """What the four networks share: settings, the optimizers and the update step."""

    #: conv bin_W_N seeds the flip optimizer's momentum with noise (reference behaviour)
    noisy_momentum = False

    def __init__(self, cfg: Settings):
        super().__init__()
        self.cfg = cfg
        self.T, self.Kmax = cfg.T, cfg.Kmax
        self.rho, self.rhop, window = ACTIVATIONS[cfg.activationFun]
        self.binary = cfg.binary_activations
        self.theta = cfg.rho_threshold
        self.gamma_neur = cfg.gamma_neur
        # States lie in [0, 1], so s - theta lies in [-theta, 1 - theta]; where rhop is 1 on
        # all of it, the gate is skipped (exact: e.g. heaviside with theta = 0.5).
        self.gate_is_one = window[0] <= -self.theta and 1 - self.theta <= window[1]
        self.bop: Bop | None = None
        self.bias_opt: torch.optim.SGD | None = None

    # -- parameters by role (output first, then conv layers top first) ---------------------

    def weight_layers(self) -> list[nn.Module]:
        raise NotImplementedError

    def flip_settings(self) -> list[tuple[float, float]]:
        """(gamma, threshold) of each weight layer."""
        raise NotImplementedError

    def make_optimizers(self) -> None:
        """Create the flip optimizer (weights) and SGD (biases). ``.to(device)`` moves the
        parameters in place, so the optimizers stay valid; their state is created lazily."""
        layers = self.weight_layers()
        groups = [
            {"params": [layer.weight], "gamma": g, "threshold": t}
            for layer, (g, t) in zip(layers, self.flip_settings(), strict=True)
        ]
        self.bop = Bop(groups, inclusive=self.cfg.flip_inclusive)
        lr = self.cfg.lrBias
        self.bias_opt = torch.optim.SGD(
            [{"params": [layer.bias], "lr": lr[i]} for i, layer in enumerate(layers)], lr=lr[0]
        )

    def optimizer_state(self) -> dict:
        return {"bop": self.bop.state_dict(), "bias": self.bias_opt.state_dict()}

    def load_optimizer_state(self, state: dict) -> None:
        self.bop.load_state_dict(state["bop"])
        self.bias_opt.load_state_dict(state["bias"])

    # -- the reference's steps ----------------------------------------------------------------

    def prepare(self, data: Tensor) -> Context:
        raise NotImplementedError

    def init_hidden(self, data: Tensor) -> State:
        raise NotImplementedError

    def stepper(self, state: State, ctx: Context, target=None, beta: float = 0.0, pred=None):
        raise NotImplementedError

    def forward(
        self,
        state: State,
        ctx: Context,
        beta: float = 0.0,
        target: Tensor | None = None,
        pred: Tensor | None = None,
        optim: str = "ep",
    ) -> State:
        """Free phase (``beta == 0``: ``T`` steps) or nudged phase (``Kmax`` steps).

        With ``optim="bptt"`` the free phase keeps the autograd graph of its last steps
        only (truncated BPTT): fc nets ``Kmax + 1`` steps, conv nets ``Kmax`` steps, as in
        the reference.
        """
        if optim == "bptt" and beta == 0:
            tracked = self.Kmax + 1 if isinstance(self, _FCNetwork) else self.Kmax
            with torch.no_grad():
                for _ in range(self.T - tracked):
                    state = self.stepper(state, ctx)
            state = State([x.detach() for x in state.s], list(state.inds))
            for _ in range(tracked):
                state = self.stepper(state, ctx)
            return state
        with torch.no_grad():
            for _ in range(self.T if beta == 0 else self.Kmax):
                state = self.stepper(state, ctx, target=target, beta=beta, pred=pred)
        return state

    def activations(self, s: list[Tensor]) -> list[Tensor]:
        """What a layer sends: the state (bin_W) or H(s - theta) (bin_W_N)."""
        return list(s)

    def nudge(self, target: Tensor, s0: Tensor, pred: Tensor | None, beta: float) -> Tensor:
        reference = pred if (self.cfg.nudge == "free" and pred is not None) else s0
        return (target - reference).mul_(beta)

    def compute_gradient(
        self, nudged: State, free: State, ctx: Context, beta: float
    ) -> list[Tensor]:
        """Put the EP estimate, as a loss gradient (``-g``), into the weights' and biases'
        ``.grad``; return the scaling factors' gradients (ascent direction)."""
        raise NotImplementedError

    def update_weights(
        self,
        nudged: State | None,
        free: State,
        ctx: Context,
        beta: float,
        epoch: int = 1,
        optim: str = "ep",
    ) -> None:
        """One update: flips (Bop), biases (SGD) and, when learnt, the scaling factors.

        With ``optim="ep"`` the gradients come from :meth:`compute_gradient`; with
        ``"bptt"`` they are already in ``.grad`` (``loss.backward()``).
        """
        alpha_grads = self.compute_gradient(nudged, free, ctx, beta) if optim == "ep" else None
        if self.noisy_momentum:
            for group in self.bop.param_groups:
                (p,) = group["params"]
                if not self.bop.state.get(p):
                    noise = torch.randn(p.shape).to(p.device)
                    self.bop.set_momentum(p, 2 * group["gamma"] * noise)
        self.bop.step()
        self.bias_opt.step()
        if self.cfg.learnAlpha and alpha_grads is not None:
            with torch.no_grad():
                self.update_alpha(alpha_grads, self.cfg.lr_alpha(epoch))
        for layer in self.weight_layers():
            layer.weight.grad = None
            layer.bias.grad = None

    def update_alpha(self, grads: list[Tensor], lrs: list[float]) -> None:
        """alpha += lr * grad_alpha, then w = alpha * sign(w), per layer (fc nets)."""
        for i, (layer, grad) in enumerate(zip(self.weight_layers(), grads, strict=True)):
            self.alpha[i] += lrs[i] * grad
            layer.weight.sign_().mul_(self.alpha[i])

    def alpha_values(self) -> list[float]:
        """The current scaling factor of each weight layer (mean over channels for conv)."""
        raise NotImplementedError

    def num_weights(self) -> list[int]:
        return [layer.weight.numel() for layer in self.weight_layers()]


# ----------------------------------------------------------------------------------------------
# Fully connected networks
# ----------------------------------------------------------------------------------------------


class _FCNetwork(EPNetwork):
    def __init__(self, cfg: Settings):
        super().__init__(cfg)
        self.sizes = list(reversed(cfg.layersList))  # output first, input last
        self.W = nn.ModuleList()
        alphas = []
        with torch.no_grad():
            for i in range(len(self.sizes) - 1):
                self.W.append(nn.Linear(self.sizes[i + 1], self.sizes[i]))
                alphas.append(_binarize_init_(self.W[-1].weight, per_channel=False)[0])
        self.register_buffer("alpha", torch.stack(alphas))
        self.make_optimizers()

    def weight_layers(self) -> list[nn.Module]:
        return list(self.W)

    def flip_settings(self) -> list[tuple[float, float]]:
        n = len(self.W)
        return list(zip(self.cfg.gamma[:n], self.cfg.gradThreshold[:n], strict=True))

    def alpha_values(self) -> list[float]:
        return [float(a) for a in self.alpha]

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


class NetworkFcBinW(_FCNetwork):
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


class NetworkFcBinWN(_FCNetwork):
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
            new.append(_leak(s[layer], pre, self.gamma_neur))
        return State([*new, s[-1]])


def _leak(s: Tensor, pre: Tensor, gamma: float) -> Tensor:
    """clamp((1 - gamma) s + gamma pre, 0, 1)"""
    return torch.lerp(s, pre, gamma).clamp_(0, 1)


# ----------------------------------------------------------------------------------------------
# Convolutional networks
# ----------------------------------------------------------------------------------------------


class _ConvNetwork(EPNetwork):
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
                self.conv.append(nn.Conv2d(self.channels[j + 1], self.channels[j], k, padding=P))
                conv_alpha.append(_binarize_init_(self.conv[-1].weight, per_channel=True))
                if self.binary:
                    nn.init.zeros_(self.conv[-1].bias)
            flat = self.channels[0] * self.pool_sizes[0] ** 2
            self.sizes = [*reversed(cfg.layersList), flat]  # classifier, output first
            fc_alpha = []
            for i in range(len(self.sizes) - 1):
                self.fc.append(nn.Linear(self.sizes[i + 1], self.sizes[i]))
                fc_alpha.append(_binarize_init_(self.fc[-1].weight, per_channel=False)[0])
                if self.binary:
                    nn.init.zeros_(self.fc[-1].bias)
        self.register_buffer("fc_alpha", torch.stack(fc_alpha))
        for j, a in enumerate(conv_alpha):
            self.register_buffer(f"conv_alpha_{j}", a)
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
            shape = (-1,) + (1,) * (layer.weight.dim() - 1) if i >= len(self.fc) else ()
            layer.weight.sign_().mul_(alphas.reshape(shape) if shape else alphas[0])

    def pool(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return F.max_pool2d(x, self.F, stride=self.F, return_indices=True)

    def unpool(self, x: Tensor, idx: Tensor, j: int) -> Tensor:
        size = self.conv_sizes[j]
        return F.max_unpool2d(x, idx, self.F, stride=self.F, output_size=(size, size))

    def prepare(self, data: Tensor) -> Context:
        pooled, idx = self.pool(self.conv[-1](data))
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
                p, idx = self.pool(self.conv[j](a[nc + j + 1]))
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
                        energy = (an[k] * self.pool(conv(an[k + 1]))[0]).sum((0, 2, 3)) - (
                            af[k] * self.pool(conv(af[k + 1]))[0]
                        ).sum((0, 2, 3))
                    alpha_grads.append(coef * energy)
        return alpha_grads


class NetworkConvBinW(_ConvNetwork):
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


class NetworkConvBinWN(_ConvNetwork):
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
            new.append(_leak(x, p, self.gamma_neur))
        return State(new, inds)


_CLASSES = {
    ("fc", "bin_W"): NetworkFcBinW,
    ("fc", "bin_W_N"): NetworkFcBinWN,
    ("conv", "bin_W"): NetworkConvBinW,
    ("conv", "bin_W_N"): NetworkConvBinWN,
}

# the reference's class names
Network_fc_bin_W = NetworkFcBinW
Network_fc_bin_W_N = NetworkFcBinWN
Network_conv_bin_W = NetworkConvBinW
Network_conv_bin_W_N = NetworkConvBinWN


def build_network(cfg: Settings, input_shape: tuple[int, ...]) -> EPNetwork:
    """The network for ``cfg`` (validated) and one input of shape ``input_shape``
    (``(features,)`` or ``(channels, height, width)``)."""
    cls = _CLASSES[(cfg.archi, cfg.binary_settings)]
    if cfg.archi == "fc":
        features = math.prod(input_shape)
        if cfg.layersList[0] != features:
            raise ShapeError(
                f"--layersList starts with {cfg.layersList[0]} inputs, but the {cfg.dataset} "
                f"images have {features} values"
            )
        return cls(cfg)
    channels, height = input_shape[0], input_shape[-1]
    if cfg.convList[-1] != channels:
        raise ShapeError(
            f"--convList ends with {cfg.convList[-1]} input channel(s), but the {cfg.dataset} "
            f"images have {channels}"
        )
    return cls(cfg, height)

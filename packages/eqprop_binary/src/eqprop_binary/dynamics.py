"""What the four networks of binary Equilibrium Propagation share: states, the per-batch
context, the XNOR-Net initialisation and the base class with the reference's steps.

Every network follows the discrete-time ("prototypical") dynamics: all layers are updated
synchronously from the previous step's states; the free phase runs ``T`` steps, the nudged
phase ``Kmax`` more from the free equilibrium with the output pulled towards the target by
``beta * (y - s_out)`` (added after the activation). Weights are ``alpha * sign(w)`` and
are trained by the flip optimizer :class:`bnn_shared.optim.Bop` fed with the one-sided EP
estimate ``1/(beta B) (s_beta^T s_beta - s_free^T s_free)``; biases by SGD; the scaling
factors ``alpha`` are fixed or learnt.

Conventions as in the reference: state ``s[0]`` is the output layer, ``W[0]`` (or
``fc[0]``) maps the last hidden layer to the output; conv states come after the classifier,
top conv layer first. Each class has the reference's steps: :meth:`~EPNetwork.init_hidden`,
:meth:`~EPNetwork.stepper`, :meth:`~EPNetwork.forward` (free phase with ``beta=0``, nudged
phase otherwise), :meth:`~EPNetwork.compute_gradient` and :meth:`~EPNetwork.update_weights`.

Speed: everything is batched; the relaxation runs under ``torch.no_grad()``; what does not
change between the steps of a batch is computed once per batch (:meth:`~EPNetwork.prepare`):
the clamped input's drive of the first hidden layer (fc) and the pooled first convolution of
the image with its pooling indices (conv).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from bnn_shared import quantizers
from bnn_shared.errors import ShapeError
from bnn_shared.layers import QuantConv2d, QuantLinear
from bnn_shared.optim import Bop
from torch import nn

from .activations import ACTIVATIONS
from .settings import Settings

__all__ = [
    "Context",
    "EPNetwork",
    "State",
    "binarize_init_",
    "binary_conv2d",
    "binary_linear",
    "leak",
]

Tensor = torch.Tensor


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


def _input_marker(binary_input: bool) -> quantizers.NoOp | None:
    return quantizers.NoOp(precision=1) if binary_input else None


def binary_linear(in_features: int, out_features: int, binary_input: bool = False) -> QuantLinear:
    """A fully connected layer whose weight IS ``alpha * sign`` (no latent weight): a core
    :class:`~bnn_shared.layers.QuantLinear` with the identity kernel quantizer
    ``NoOp(precision=1)``, so that ``quantized_weight()`` is the weight itself, the summary
    counts it at 1 bit and the export packs it with a 2-value codebook. ``binary_input``
    marks its inputs as 1-bit (``NoOp(precision=1)`` input quantizer: the binary
    activations of bin_W_N). Initialised as ``nn.Linear`` (same random draws, same
    state-dict keys). The relaxation reads ``weight`` directly; forward is never needed."""
    return QuantLinear(
        in_features,
        out_features,
        input_quantizer=_input_marker(binary_input),
        kernel_quantizer=quantizers.NoOp(precision=1),
    )


def binary_conv2d(
    in_channels: int, out_channels: int, kernel: int, padding: int, binary_input: bool = False
) -> QuantConv2d:
    """A convolution whose weight IS ``alpha * sign`` (one alpha per output channel): a core
    :class:`~bnn_shared.layers.QuantConv2d` with ``NoOp(precision=1)`` (see
    :func:`binary_linear`)."""
    return QuantConv2d(
        in_channels,
        out_channels,
        kernel,
        padding=padding,
        input_quantizer=_input_marker(binary_input),
        kernel_quantizer=quantizers.NoOp(precision=1),
    )


def binarize_init_(weight: Tensor, per_channel: bool) -> Tensor:
    """XNOR-Net init: ``w = alpha * sign(w)``, alpha = mean |w| rounded to 4 decimals (one per
    layer, or one per output channel; :func:`bnn_shared.quantizers.mean_abs_scale`, then
    :func:`~bnn_shared.quantizers.scaled_sign` with ``torch.sign``'s 0 at 0). Returns alpha
    (float32, one entry per channel, or one entry)."""
    alpha = quantizers.mean_abs_scale(weight, per_channel, decimals=4)
    weight.copy_(quantizers.scaled_sign(weight, alpha, zero=0))
    return alpha


class EPNetwork(nn.Module):
    """What the four networks share: settings, the optimizers and the update step."""

    #: conv bin_W_N seeds the flip optimizer's momentum with noise (reference behaviour)
    noisy_momentum = False
    #: truncated BPTT tracks ``Kmax`` steps, plus this many (fc nets: 1, as in the reference)
    bptt_extra_step = 0

    def __init__(self, cfg: Settings):
        super().__init__()
        self.cfg = cfg
        self.T, self.Kmax = cfg.T, cfg.Kmax
        self.rho, self.rhop, window = ACTIVATIONS.get(cfg.activationFun)
        self.binary = cfg.binary_activations
        self.theta = cfg.rho_threshold
        self.gamma_neur = cfg.gamma_neur
        # States lie in [0, 1], so s - theta lies in [-theta, 1 - theta]; where rhop is 1 on
        # all of it, the gate is skipped (exact: e.g. heaviside with theta = 0.5).
        self.gate_is_one = window[0] <= -self.theta and 1 - self.theta <= window[1]
        self.bop: Bop | None = None
        # called with the gradient tensors of an update before it is applied (torchrun)
        self.gradient_sync: Callable[[list[Tensor]], None] | None = None
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
        state: State | Tensor,
        ctx: Context | None = None,
        beta: float = 0.0,
        target: Tensor | None = None,
        pred: Tensor | None = None,
        optim: str = "ep",
    ) -> State | Tensor:
        """Free phase (``beta == 0``: ``T`` steps) or nudged phase (``Kmax`` steps).

        With ``optim="bptt"`` the free phase keeps the autograd graph of its last steps
        only (truncated BPTT): fc nets ``Kmax + 1`` steps, conv nets ``Kmax`` steps, as in
        the reference.

        Called with a batch of inputs alone (``net(x)``), it is :meth:`infer`: the free
        phase from the initial states, returning the output layer's state.
        """
        if ctx is None:
            if not isinstance(state, Tensor):
                raise ShapeError("forward needs a batch of inputs, or a State and its Context")
            return self.infer(state)
        if optim == "bptt" and beta == 0:
            tracked = self.Kmax + self.bptt_extra_step
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

    # -- inference and its cost ----------------------------------------------------------------

    #: fc nets read their inputs flattened
    flatten_input = False

    @torch.no_grad()
    def infer(self, x: Tensor) -> Tensor:
        """The output layer's state after the free phase from the initial states (``T``
        steps), as the evaluation runs it: ``(batch, 10 * expand_output)``."""
        x = x.flatten(1) if self.flatten_input else x
        return self.forward(self.init_hidden(x), self.prepare(x)).s[0]

    def predict(self, x: Tensor) -> Tensor:
        """Predicted classes: the "Ave" read-out of the evaluation (argmax over classes of
        the mean of each class's ``expand_output`` output neurons)."""
        out = self.infer(x)
        return out.view(out.shape[0], -1, self.cfg.expand_output).mean(2).argmax(1)

    def layer_macs(self) -> list[int]:
        """MACs per sample of one use of each weight layer (order of
        :meth:`weight_layers`)."""
        raise NotImplementedError

    def summary_macs(self, inputs, output) -> list[tuple[int, int]]:
        """MACs per sample of one inference (:meth:`infer`), for the bit-aware summary.

        The last weight layer (the one that reads the input) is applied once per batch (its
        drive of the first hidden layer is computed before the relaxation); every other
        weight layer twice per step (bottom-up and top-down), ``T`` steps. Input layer MACs
        are 32-bit (float inputs); the others are 1-bit with binary activations (bin_W_N:
        the layers send H(s - theta)) and 32-bit with hardsigm states (bin_W).
        """
        *hidden, first = self.layer_macs()
        counts = [(32, first), (1 if self.binary else 32, 2 * self.T * sum(hidden))]
        totals: dict[int, int] = {}
        for precision, count in counts:
            if count:
                totals[precision] = totals.get(precision, 0) + count
        return sorted(totals.items())

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
        if self.gradient_sync is not None:  # under torchrun: the global batch's gradients
            layers = self.weight_layers()
            grads = [t for layer in layers for t in (layer.weight.grad, layer.bias.grad)]
            self.gradient_sync([t for t in grads if t is not None] + list(alpha_grads or []))
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
            layer.weight.copy_(quantizers.scaled_sign(layer.weight, self.alpha[i], zero=0))

    def alpha_values(self) -> list[float]:
        """The current scaling factor of each weight layer (mean over channels for conv)."""
        raise NotImplementedError

    def num_weights(self) -> list[int]:
        return [layer.weight.numel() for layer in self.weight_layers()]


def leak(s: Tensor, pre: Tensor, gamma: float) -> Tensor:
    """clamp((1 - gamma) s + gamma pre, 0, 1)"""
    return torch.lerp(s, pre, gamma).clamp_(0, 1)

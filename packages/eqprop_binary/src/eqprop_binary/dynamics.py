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
from bnn_shared.optim import Bop
from torch import nn

from .activations import ACTIVATIONS
from .settings import Settings

__all__ = ["Context", "EPNetwork", "State", "binarize_init_", "leak"]

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


def binarize_init_(weight: Tensor, per_channel: bool) -> Tensor:
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
            layer.weight.sign_().mul_(self.alpha[i])

    def alpha_values(self) -> list[float]:
        """The current scaling factor of each weight layer (mean over channels for conv)."""
        raise NotImplementedError

    def num_weights(self) -> list[int]:
        return [layer.weight.numel() for layer in self.weight_layers()]


def leak(s: Tensor, pre: Tensor, gamma: float) -> Tensor:
    """clamp((1 - gamma) s + gamma pre, 0, 1)"""
    return torch.lerp(s, pre, gamma).clamp_(0, 1)

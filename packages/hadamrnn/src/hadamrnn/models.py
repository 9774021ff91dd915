"""Models (reference ``models``): HadamRNN and its baselines ORNN, QORNN and LSTM.

:class:`LinearRNN` is the reference ``BinadamSSM`` (with an embedding front end it is
``BinadamSSMwithEmbeddings``) for any recurrent layer of :mod:`hadamrnn.quantized_layers`:

    h_t = W h_(t-1) + b + U_q x_t     (linear; sigma(h) fed back if not linear_recurrent)
    z_t = sigma(h_t)                  (read-out path only; sigma = ReLU, or modrelu)
    y_t = V_q z_t + c   for every t   (many-to-many)  or   y = V_q z_T + c   (many-to-one)

The recurrence is evaluated by the engine named ``engine`` (:mod:`hadamrnn.engines`). The
reference's other models (QRNN, QSSM, SpectralQSSM) are in :mod:`hadamrnn.qmodels`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from bnn_shared.errors import ConfigError
from torch import Tensor, nn

from .engines import ENGINES
from .quantized_layers import QLinear

__all__ = ["LinearRNN", "LSTMModel", "READOUTS"]

#: Read-out positions of many-to-one models over token sequences (spec quirk 3).
READOUTS = ("last_position", "last_token", "mean")


class LinearRNN(nn.Module):
    """Single-layer orthogonal RNN with quantized input and output matrices.

    Args:
        recurrent: the recurrent layer (``HadamardRecurrent``, ``OrthogonalRecurrent``, ...).
        input_size: ``d_in`` (embedding size for token inputs).
        output_size: ``d_out``.
        num_bits: bit width of ``U`` (and of ``V`` when ``qoutput``); None: float.
        qoutput: quantize ``V``.
        bias_final: output bias ``c``.
        many_to_many: one output per time step (copy task).
        vocab_size: when set, inputs are token ids and an embedding ``(vocab, d_in)`` with
            ``padding_idx=0`` (default ``N(0, 1)`` init, float) comes first.
        embeddings_dropout: dropout on the embeddings (0 in HadamRNN).
        readout: many-to-one position: ``last_position`` (reference), ``last_token`` (last
            non-padding token) or ``mean`` (mean over non-padding tokens).
        linear_recurrent: False feeds ``sigma(h)`` back (QORNN option; sequential engine only).
        engine: ``"parallel"`` or ``"sequential"``.
        activation: ``sigma``, registered as the submodule ``activation`` (its parameters
            train, e.g. modrelu's ``activation.b``); None (default): ReLU, applied as a
            function, as the paper. See :data:`hadamrnn.extra_layers.ACTIVATIONS`.
        output_layer: replaces the default ``V`` (a ``QLinear(n, d_out, bias_final,
            num_bits if qoutput)``); the reference's QSSM and QRNN use a float ``V``.
    """

    def __init__(
        self,
        recurrent: nn.Module,
        *,
        input_size: int,
        output_size: int,
        num_bits: int | None = 4,
        qoutput: bool = True,
        bias_final: bool = True,
        many_to_many: bool = False,
        vocab_size: int | None = None,
        embeddings_dropout: float = 0.0,
        readout: str = "last_position",
        linear_recurrent: bool = True,
        engine: str = "parallel",
        activation: nn.Module | None = None,
        output_layer: nn.Module | None = None,
    ):
        super().__init__()
        if readout not in READOUTS:
            raise ConfigError(f"readout must be one of {', '.join(READOUTS)}, got {readout!r}")
        hidden = recurrent.hidden_size
        self.recurrent = recurrent
        self.input_layer = QLinear(input_size, hidden, bias=False, bits=num_bits)
        if output_layer is None:
            output_layer = QLinear(
                hidden, output_size, bias=bias_final, bits=num_bits if qoutput else None
            )
        self.output_layer = output_layer
        self.activation = activation
        self.embedding = None
        if vocab_size is not None:
            self.embedding = nn.Embedding(vocab_size, input_size, padding_idx=0)
        self.dropout = nn.Dropout(embeddings_dropout)
        self.many_to_many = many_to_many
        self.readout = readout
        self.linear_recurrent = linear_recurrent
        self.engine = engine
        ENGINES.get(engine)  # fail early on an unknown name

    def embed(self, x: Tensor) -> Tensor:
        """Inputs of the recurrence ``(B, T, d_in)`` (token ids go through the embedding)."""
        if self.embedding is None:
            return x
        return self.dropout(self.embedding(x))

    def hidden_states(
        self,
        x: Tensor,
        *,
        all_states: bool = True,
        engine: str | None = None,
        input_quantizer: Callable[[Tensor], Tensor] | None = None,
        state_quantizer: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Pre-activation states ``h`` ``(B, T, n)`` (or ``(B, n)`` for the last one)."""
        inputs = self.embed(x)
        if input_quantizer is not None:
            inputs = input_quantizer(inputs)
        rec = self.recurrent.recurrence(self.input_layer.quantized_weight())
        nonlinearity = None if self.linear_recurrent else self.sigma
        if nonlinearity is not None or state_quantizer is not None:
            engine = "sequential"
        run = ENGINES.get(engine or self.engine)
        return run(
            rec,
            inputs,
            all_states=all_states,
            nonlinearity=nonlinearity,
            state_quantizer=state_quantizer,
        )

    def forward(self, x: Tensor, **kwargs) -> Tensor:
        """Logits ``(B, T, d_out)`` (many-to-many) or ``(B, d_out)``; ``kwargs`` as
        :meth:`hidden_states` (engine override, PTQ quantizers)."""
        pooled = self.readout != "last_position" and not self.many_to_many
        h = self.hidden_states(x, all_states=self.many_to_many or pooled, **kwargs)
        if pooled:
            h = _pool(h, x, self.readout)
        return self.read_out(h)

    def sigma(self, h: Tensor) -> Tensor:
        """The activation: ``self.activation(h)``, or ReLU."""
        return torch.relu(h) if self.activation is None else self.activation(h)

    def read_out(self, h: Tensor) -> Tensor:
        """``V sigma(h) + c`` for states ``(..., n)``."""
        return self.output_layer(self.sigma(h))

    def apply_constraints_(self) -> None:
        """Called after every optimizer step (optional clipping of HadamRNN's ``s``)."""
        self.recurrent.apply_constraints_()

    # -- bit-aware summary (bnn_shared.summary) ----------------------------------------------

    def param_precisions(self) -> dict[str, int]:
        """No parameters of its own; defined so that the summary lists the model's row, which
        carries the recurrence's MACs (its layers are read, not called)."""
        return {}

    def summary_macs(self, inputs, output) -> list[tuple[int, int]]:
        """MACs of the recurrence for one sequence of ``T`` steps: ``T`` products ``U x_t``
        (``n d_in`` each) and ``T`` products ``W h`` (``n`` times the non-zeros of a row of
        ``W``: ``n`` for a dense or full Hadamard ``W``, ``2^k`` for Block-HadamRNN; a fast
        Walsh–Hadamard transform needs only ``n log2(2^k)`` additions). Inputs and states are
        float, so all are 32-bit MACs. The output layer counts its own; biases, the activation
        and the embedding lookup are not MACs."""
        steps = inputs[0].shape[1]
        n = self.recurrent.hidden_size
        row = getattr(self.recurrent, "block", n)
        return [(32, steps * n * (self.input_layer.in_features + row))]


def _pool(h: Tensor, tokens: Tensor, readout: str) -> Tensor:
    mask = (tokens != 0).to(h.dtype)  # token id 0 is padding
    if readout == "mean":
        return (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
    positions = torch.arange(tokens.shape[1], device=tokens.device)
    last = (mask.long() * (positions + 1)).argmax(1)
    return h[torch.arange(len(h), device=h.device), last]


class LSTMModel(nn.Module):
    """Float LSTM baseline with the same read-out shapes as :class:`LinearRNN`."""

    def __init__(
        self,
        *,
        input_size: int,
        hidden_size: int,
        output_size: int,
        many_to_many: bool = False,
        vocab_size: int | None = None,
        embeddings_dropout: float = 0.0,
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = None
        if vocab_size is not None:
            self.embedding = nn.Embedding(vocab_size, input_size, padding_idx=0)
        self.dropout = nn.Dropout(embeddings_dropout)
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.output_layer = nn.Linear(hidden_size, output_size)
        self.many_to_many = many_to_many

    def forward(self, x: Tensor, **_: object) -> Tensor:
        if self.embedding is not None:
            x = self.dropout(self.embedding(x))
        out, _ = self.lstm(x)
        return self.output_layer(out if self.many_to_many else out[:, -1])

    def apply_constraints_(self) -> None:
        pass

    def param_precisions(self) -> dict[str, int]:
        """No parameters of its own (see :meth:`LinearRNN.param_precisions`)."""
        return {}

    def summary_macs(self, inputs, output) -> list[tuple[int, int]]:
        """The LSTM's MACs for one sequence: ``T`` steps of ``4 n (d_in + n)`` (float)."""
        steps = inputs[0].shape[1]
        n, d_in = self.hidden_size, self.lstm.input_size
        return [(32, steps * 4 * n * (d_in + n))]

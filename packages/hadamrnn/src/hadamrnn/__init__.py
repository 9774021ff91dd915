"""HadamRNN: binary and sparse-ternary Hadamard orthogonal RNNs (Foucault, Malgouyres, Mamalet,
ICLR 2025, arXiv 2502.00047), with a fast linear-recurrence engine."""

__version__ = "0.1.0"

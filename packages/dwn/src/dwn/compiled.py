"""Bit-level inference of an exported DWN with integer and bit operations only (NumPy).

A trained DWN is a boolean circuit (spec §3.2, §10): a thermometer turns each raw feature
into unary bits, every LUT reads ``n`` wired bits and outputs one bit of its truth table, and
GroupSum counts the ones of each class's block. :class:`CompiledDWN` runs exactly that:

1. thermometer: ``bit[f, t] = x[f] > thr[f, t]`` (strict; the only float operation, a
   comparison), flattened feature-major, one byte per bit;
2. LUT address by shifts and ors: ``addr[b, j] = OR_l bit[b, M[j, l]] << l`` (the first
   wired input is the least-significant bit);
3. lookup by bit extraction: the truth table of LUT ``j`` is packed into 64-bit words
   (one word for ``n <= 6``) and ``out[b, j] = (T[j, addr >> 6] >> (addr & 63)) & 1``;
4. GroupSum: optional fixed permutation, zero padding to ``k * m`` outputs, popcount of the
   contiguous block ``[c*m, (c+1)*m)`` per class ``c``;
5. prediction: argmax of the popcounts, ties to the lowest class index (as ``torch.argmax``).

The batch is processed in chunks that keep the ``(rows, LUTs)`` address arrays small.
Activations stay one byte per bit: NumPy gathers bytes as fast as words, and unpacking
packed activations again for every wire would cost more than it saves. Build one with
:func:`dwn.export.compile_model` or :func:`dwn.export.load_compiled`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from bnn_shared.errors import ShapeError

__all__ = ["CompiledDWN", "CompiledLUTLayer", "wiring_dtype"]

_WORD_BITS = 64
#: Bytes of the per-chunk address array that the automatic chunk size aims at.
_CHUNK_BYTES = 16 << 20


def wiring_dtype(input_size: int) -> np.dtype:
    """Smallest unsigned integer dtype holding the indices ``0 .. input_size - 1``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if input_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


@dataclass(frozen=True, eq=False)
class CompiledLUTLayer:
    """One layer of ``J`` LUTs with ``n`` inputs each, as bits.

    Args:
        input_size: number of input bits of the layer.
        wiring: unsigned integers ``(J, n)``; ``wiring[j, l]`` is the input read as address
            bit ``l`` of LUT ``j``.
        tables: uint8 ``(ceil(J * 2**n / 8),)``: the truth tables, bit ``j * 2**n + a`` (LSB
            first, ``numpy.packbits(..., bitorder="little")``) is the output of LUT ``j`` at
            address ``a``.
    """

    input_size: int
    wiring: np.ndarray
    tables: np.ndarray
    _words: np.ndarray = field(init=False, repr=False, compare=False)
    _columns: tuple[np.ndarray, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wiring, tables = self.wiring, self.tables
        if wiring.ndim != 2 or wiring.shape[1] < 1 or wiring.dtype.kind != "u":
            raise ShapeError(
                f"wiring must be unsigned integers (J, n), got {wiring.dtype} {wiring.shape}"
            )
        if wiring.size and int(wiring.max()) >= self.input_size:
            raise ShapeError(f"wiring reads input {int(wiring.max())} of only {self.input_size}")
        count, entries = wiring.shape[0], 1 << wiring.shape[1]
        expected = (count * entries + 7) // 8
        if tables.dtype != np.uint8 or tables.shape != (expected,):
            raise ShapeError(
                f"{count} tables of {entries} bits take {expected} bytes "
                f"(uint8), got {tables.dtype} {tables.shape}"
            )
        object.__setattr__(self, "_words", _table_words(tables, count, entries))
        columns = tuple(
            np.ascontiguousarray(wiring[:, l], dtype=np.intp) for l in range(wiring.shape[1])
        )
        object.__setattr__(self, "_columns", columns)

    @property
    def n(self) -> int:
        """Inputs per LUT."""
        return int(self.wiring.shape[1])

    @property
    def output_size(self) -> int:
        """Number of LUTs ``J``."""
        return int(self.wiring.shape[0])

    def truth_tables(self) -> np.ndarray:
        """The truth tables unpacked, bool ``(J, 2**n)``."""
        bits = np.unpackbits(self.tables, count=self.output_size << self.n, bitorder="little")
        return bits.reshape(self.output_size, 1 << self.n).astype(bool)

    def forward(self, bits: np.ndarray) -> np.ndarray:
        """Output bits uint8 ``(B, J)`` of the input bits uint8 ``(B, input_size)``."""
        address_type = wiring_dtype(1 << self.n).type
        address = np.zeros((bits.shape[0], self.output_size), dtype=address_type)
        for position, column in enumerate(self._columns):
            address |= bits[:, column].astype(address_type, copy=False) << address_type(position)
        if self._words.shape[1] == 1:
            words = self._words[:, 0]
        else:
            words = self._words[np.arange(self.output_size), address >> address_type(6)]
            address = address & address_type(_WORD_BITS - 1)
        return ((words >> address) & np.uint64(1)).astype(np.uint8)


def _table_words(tables: np.ndarray, count: int, entries: int) -> np.ndarray:
    """Truth tables as native uint64 words ``(J, ceil(2**n / 64))``; bit ``a`` = entry ``a``."""
    width = math.ceil(entries / _WORD_BITS) * _WORD_BITS
    bits = np.zeros((count, width), dtype=np.uint8)
    bits[:, :entries] = np.unpackbits(tables, count=count * entries, bitorder="little").reshape(
        count, entries
    )
    packed = np.packbits(bits, axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64)


class CompiledDWN:
    """A DWN as thresholds, wiring and truth-table bits; inference with integer/bit ops only.

    Args:
        thresholds: float ``(*feature_shape, num_bits)`` when ``feature_wise``, else
            ``(num_bits,)``; input bit ``t`` of feature ``f`` is ``x[f] > thresholds[f, t]``.
        feature_shape: shape of one raw input sample (without the batch dimension).
        feature_wise: whether each feature has its own thresholds.
        layers: the LUT layers, first to last.
        num_classes: GroupSum ``k``.
        permutation: optional permutation of ``range(size)``, ``size <= J_last``: GroupSum
            reads ``out[:, permutation]`` (the outputs from ``size`` on are dropped, as in
            :class:`~dwn.utils.GroupSum`). Default None (no permutation, all outputs).

    The GroupSum inputs (``size`` or ``J_last`` of them) are zero-padded to ``padded_size =
    k * ceil(inputs / k)`` and class ``c`` counts the ones of block ``[c*m, (c+1)*m)``,
    ``m = padded_size / k``.
    """

    def __init__(
        self,
        thresholds: np.ndarray,
        feature_shape: Sequence[int],
        feature_wise: bool,
        layers: Sequence[CompiledLUTLayer],
        num_classes: int,
        permutation: np.ndarray | None = None,
    ) -> None:
        self.thresholds = np.asarray(thresholds)
        self.feature_shape = tuple(int(size) for size in feature_shape)
        self.feature_wise = bool(feature_wise)
        self.layers = tuple(layers)
        self.num_classes = int(num_classes)
        self.permutation = None if permutation is None else np.asarray(permutation, np.intp)
        self._check()
        # Feature-major flat thresholds: (F, T) per feature, or (T,) shared by all features.
        bits = self.thresholds.shape[-1]
        self._flat_thresholds = (
            self.thresholds.reshape(-1, bits)
            if self.feature_wise
            else self.thresholds.reshape(bits)
        )

    @property
    def num_features(self) -> int:
        """Raw features per sample, ``prod(feature_shape)``."""
        return math.prod(self.feature_shape)

    @property
    def num_bits(self) -> int:
        """Thermometer bits per feature."""
        return int(self.thresholds.shape[-1])

    @property
    def padded_size(self) -> int:
        """GroupSum width after zero padding: a multiple of ``num_classes``."""
        outputs = self.layers[-1].output_size if self.permutation is None else len(self.permutation)
        return -(-outputs // self.num_classes) * self.num_classes

    @property
    def size_bytes(self) -> int:
        """Bytes of the model proper: packed truth tables plus wiring (encoder excluded)."""
        return sum(layer.tables.nbytes + layer.wiring.nbytes for layer in self.layers)

    @property
    def sizes(self) -> dict[str, int]:
        """Byte counts: ``tables``, ``wiring``, ``thresholds``, ``model`` (= tables + wiring)
        and ``table_bits`` (number of truth-table bits)."""
        tables = sum(layer.tables.nbytes for layer in self.layers)
        wiring = sum(layer.wiring.nbytes for layer in self.layers)
        return {
            "tables": tables,
            "wiring": wiring,
            "thresholds": int(self.thresholds.nbytes),
            "model": tables + wiring,
            "table_bits": sum(layer.output_size << layer.n for layer in self.layers),
        }

    def encode(self, x: Any) -> np.ndarray:
        """Thermometer bits uint8 ``(B, F * num_bits)`` of raw inputs ``(B, *feature_shape)``."""
        values = self._as_features(x)
        if self.feature_wise:
            above = values[:, :, None] > self._flat_thresholds
        else:
            above = values[:, :, None] > self._flat_thresholds[None, None, :]
        return above.reshape(len(values), -1).view(np.uint8)

    def scores(self, x: Any, *, chunk_size: int | None = None) -> np.ndarray:
        """Per-class popcounts int64 ``(B, k)``; the PyTorch logits are ``scores / tau``.

        Args:
            x: raw inputs ``(B, *feature_shape)`` (or ``(B, F)``), NumPy array or torch tensor.
            chunk_size: samples per chunk; default None picks one that bounds memory.
        """
        values = self._as_features(x)
        rows = chunk_size or self._auto_chunk()
        if rows < 1:
            raise ShapeError(f"chunk_size must be >= 1, got {chunk_size}")
        out = np.empty((len(values), self.num_classes), dtype=np.int64)
        for start in range(0, len(values), rows):
            out[start : start + rows] = self._chunk_scores(values[start : start + rows])
        return out

    def predict(self, x: Any, *, chunk_size: int | None = None) -> np.ndarray:
        """Class ids int64 ``(B,)``: argmax of :meth:`scores`, ties to the lowest class."""
        return self.scores(x, chunk_size=chunk_size).argmax(axis=1)

    def _chunk_scores(self, values: np.ndarray) -> np.ndarray:
        bits = self.encode(values)
        for layer in self.layers:
            bits = layer.forward(bits)
        if self.permutation is not None:
            bits = bits[:, self.permutation]
        padded = np.zeros((len(bits), self.padded_size), dtype=np.uint8)
        padded[:, : bits.shape[1]] = bits
        groups = padded.reshape(len(bits), self.num_classes, -1)
        return np.count_nonzero(groups, axis=2)

    def _auto_chunk(self) -> int:
        widest = max(layer.output_size for layer in self.layers)
        widest = max(widest, self.num_features * self.num_bits)
        return max(1, _CHUNK_BYTES // (8 * widest))

    def _as_features(self, x: Any) -> np.ndarray:
        """Raw inputs as a float array ``(B, F)`` compared exactly as torch would compare them.

        Torch compares an integer tensor with float thresholds in the thresholds' dtype and
        two float tensors in the wider of the two dtypes; both are reproduced here.
        """
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            if x.dtype == torch.bfloat16:
                x = x.float()
            x = x.numpy()
        values = np.asarray(x)
        if values.ndim < 1:
            raise ShapeError("inputs need a batch dimension, got a scalar")
        values = values.reshape(len(values), math.prod(values.shape[1:]))
        if values.shape[1] != self.num_features:
            raise ShapeError(
                f"each sample must have {self.num_features} features "
                f"(shape {self.feature_shape}), got {values.shape[1]}"
            )
        if values.dtype.kind in "biu":
            return values.astype(self.thresholds.dtype)
        if values.dtype.kind != "f":
            raise ShapeError(f"inputs must be numbers, got dtype {values.dtype}")
        return values.astype(np.promote_types(values.dtype, self.thresholds.dtype), copy=False)

    def _check(self) -> None:
        if not self.layers:
            raise ShapeError("a compiled DWN needs at least one LUT layer")
        if self.thresholds.dtype.kind != "f" or self.thresholds.ndim < 1:
            raise ShapeError(f"thresholds must be a float array, got {self.thresholds.dtype}")
        expected = (*self.feature_shape, self.num_bits) if self.feature_wise else None
        if expected is not None and self.thresholds.shape != expected:
            raise ShapeError(
                f"feature-wise thresholds must have shape {expected}, got {self.thresholds.shape}"
            )
        if not self.feature_wise and self.thresholds.ndim != 1:
            raise ShapeError(f"shared thresholds must be 1-D, got {self.thresholds.shape}")
        width = self.num_features * self.num_bits
        for index, layer in enumerate(self.layers):
            if layer.input_size != width:
                raise ShapeError(
                    f"LUT layer {index} reads {layer.input_size} bits but gets {width}"
                )
            width = layer.output_size
        if self.num_classes < 1:
            raise ShapeError(f"GroupSum needs k >= 1 classes, got {self.num_classes}")
        perm = self.permutation
        if perm is not None and (
            perm.ndim != 1
            or len(perm) > width
            or not np.array_equal(np.sort(perm), np.arange(len(perm)))
        ):
            raise ShapeError(
                f"the GroupSum permutation must permute range(size), size <= {width} outputs"
            )

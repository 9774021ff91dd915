"""The reference's IMDB file ``imdb_data.pkl`` (HadamRNN spec 4.4 and B.4), read safely.

The reference reads ``downloaded_dataset/imdb/imdb_data.pkl`` (relative to the working
directory): a pickled dict with ``x_train``, ``y_train``, ``x_test``, ``y_test``, the x arrays
2-D integer token ids already processed by Keras (``load_data(num_words=10000)`` then
``pad_sequences(maxlen=500)``), the y arrays 0/1 labels. The rows are used as they are: only
the LAST ``seq_length`` columns are kept (Keras pads and truncates at the front).

Loading a pickle runs whatever callables it names, so a plain ``pickle.load`` of a file
from elsewhere could execute arbitrary code. :func:`read_imdb_pickle` uses an unpickler
that resolves only the names a pickle of numpy arrays needs (``numpy.ndarray``,
``numpy.dtype``, numpy's array/scalar rebuild functions, ``_codecs.encode`` for protocol 0-2
bytes) and builtin containers/scalars; any other name (``os.system``, ...) is refused with a
one-line error before anything is called.
"""

from __future__ import annotations

import builtins
import codecs
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from bnn_shared.errors import ConfigError

__all__ = ["PICKLE_FILE", "REFERENCE_PICKLE", "read_imdb_pickle", "safe_load_pickle"]

PICKLE_FILE = "imdb_data.pkl"
#: Where the reference looks, relative to the working directory.
REFERENCE_PICKLE = Path("downloaded_dataset") / "imdb" / PICKLE_FILE
KEYS = ("x_train", "y_train", "x_test", "y_test")

_BUILTINS = frozenset(
    {"list", "tuple", "dict", "set", "frozenset", "int", "float", "bool", "complex", "str"}
    | {"bytes", "bytearray", "slice", "range"}
)


def _numpy_rebuilders() -> dict[tuple[str, str], object]:
    """numpy's own rebuild functions, taken from its reduce values (the module that holds
    them is ``numpy.core`` before numpy 2 and ``numpy._core`` since; both spellings work)."""
    found = {
        "_reconstruct": np.zeros(1).__reduce__()[0],
        "scalar": np.int64(0).__reduce__()[0],
        "_frombuffer": np.zeros(1).__reduce_ex__(5)[0],
    }
    out: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray}
    out[("numpy", "dtype")] = np.dtype
    for core in ("numpy.core", "numpy._core"):
        out[(f"{core}.multiarray", "_reconstruct")] = found["_reconstruct"]
        out[(f"{core}.multiarray", "scalar")] = found["scalar"]
        out[(f"{core}.numeric", "_frombuffer")] = found["_frombuffer"]
    out[("_codecs", "encode")] = codecs.encode
    return out


class _Refused(pickle.UnpicklingError):
    """A name outside the allowed set (its dotted name is the message)."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy arrays, dtypes and builtin containers."""

    _allowed = _numpy_rebuilders()

    def find_class(self, module: str, name: str):
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(builtins, name)
        found = self._allowed.get((module, name))
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found


def safe_load_pickle(path: Path):
    """The object pickled in ``path``, built only from numpy arrays/dtypes and builtin
    containers; anything else is a one-line :class:`ConfigError`."""
    try:
        with open(path, "rb") as handle:
            # encoding latin1: numpy's advice for pickles written by Python 2
            return _ArraysOnlyUnpickler(handle, encoding="latin1").load()
    except _Refused as exc:
        raise ConfigError(
            f"{path} references {exc}, which is not loaded: a pickle can run code, so only "
            "numpy arrays, dtypes and builtin containers are read from it"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # truncated or not a pickle: many error types, one meaning
        raise ConfigError(f"{path} is not a readable pickle ({type(exc).__name__}: {exc})") from exc


def _token_ids(path: Path, key: str, value, seq_length: int, vocab_size: int) -> np.ndarray:
    try:
        x = np.asarray(value)
    except ValueError:  # ragged nested lists
        x = np.empty(0, dtype=object)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ConfigError(
            f"{path}: {key} must be a 2-D integer array (rows padded to the same length, "
            f"as keras pad_sequences(maxlen=500) makes them), got shape {x.shape} of {x.dtype}"
        )
    if x.shape[1] < seq_length:
        raise ConfigError(
            f"{path}: {key} has {x.shape[1]} columns, fewer than DATASET.SEQ_LENGTH = "
            f"{seq_length} (the last SEQ_LENGTH columns are kept)"
        )
    x = x[:, x.shape[1] - seq_length :]
    if x.size and (x.min() < 0 or x.max() >= vocab_size):
        bad = int(x.max()) if x.max() >= vocab_size else int(x.min())
        raise ConfigError(
            f"{path}: {key} holds token id {bad}, outside 0..{vocab_size - 1}: ids index the "
            f"embedding of DATASET.VOCAB_SIZE = {vocab_size} rows (0 = padding); raise "
            "DATASET.VOCAB_SIZE and MODEL.VOCAB_SIZE or map rare words to 2 (Keras num_words)"
        )
    return x.astype(np.int64)


def _labels(path: Path, key: str, value, rows: int) -> np.ndarray:
    y = np.asarray(value)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != rows or y.dtype == object:
        raise ConfigError(
            f"{path}: {key} must be a 1-D array of {rows} labels (one per row of "
            f"x_{key[2:]}), got shape {y.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise ConfigError(f"{path}: {key} must hold 0/1 labels, got {np.unique(y)[:5]}")
    return y.astype(np.int64)


def read_imdb_pickle(path: Path, seq_length: int = 500, vocab_size: int = 10000):
    """``(x_train, y_train, x_test, y_test)`` from the reference's ``imdb_data.pkl``.

    x: the last ``seq_length`` columns, int64 token ids in ``[0, vocab_size)``; y: 0/1 as
    int64 (the reference casts to int32/float32; the values are the same, and the BCE loss
    casts labels to float). Both dtypes match the ``imdb.npz`` path, so the same data
    give the same tensors whichever file holds them. Rows stay in file order (the pickle
    is already shuffled by Keras).
    """
    data = safe_load_pickle(Path(path))
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path} must hold a dict with keys {', '.join(KEYS)}, got {type(data).__name__}"
        )
    missing = [key for key in KEYS if key not in data]
    if missing:
        raise ConfigError(
            f"{path} lacks {', '.join(missing)} (it must hold {', '.join(KEYS)}; "
            f"found: {', '.join(map(str, data)) or 'nothing'})"
        )
    out = []
    for split in ("train", "test"):
        x = _token_ids(path, f"x_{split}", data[f"x_{split}"], seq_length, vocab_size)
        out += [x, _labels(path, f"y_{split}", data[f"y_{split}"], len(x))]
    return tuple(out)

"""IMDB and GLUE (SST-2, QQP) as token-id splits (HadamRNN spec 4.4 and 4.5).

* IMDB, from the first of these files that exists (:func:`imdb_source`):
  1. the reference's pickle ``<data dir>/imdb/imdb_data.pkl`` (already Keras-processed and
     padded; read with a restricted unpickler, :mod:`.imdb_pickle`), only its LAST
     ``seq_length`` columns kept. It wins over ``imdb.npz`` in the same folder: it is the
     reference's exact data, with no processing of ours in between;
  2. the Keras file ``imdb.npz`` (``keras.datasets.imdb``'s download, arrays ``x_train``,
     ``y_train``, ``x_test``, ``y_test`` of word-rank lists) under ``<data dir>/imdb/``,
     processed as ``imdb.load_data(num_words=10000)`` does (shuffle with seed 113, start
     token 1, ranks shifted by 3, out-of-vocabulary 2), then Keras
     ``pad_sequences(maxlen=500)``: "pre" padding and truncation (the LAST 500 tokens are
     kept). Keras itself is not needed;
  3. the reference's own path ``downloaded_dataset/imdb/imdb_data.pkl`` relative to the
     working directory.
  Without any of them, Hugging Face's ``imdb`` is ranked as Keras does (an approximation,
  the ``nlp`` extra). Splits: train 25,000; val = the last 12,500 test rows; test = the
  first 12,500.
* GLUE: Hugging Face ``datasets`` + the ``bert-base-uncased`` tokenizer (the ``nlp`` extra),
  max length 128, right padding, only ``input_ids``; QQP joins the questions with two
  ``[SEP]``. GLUE test labels are hidden: its test split is for the submission TSV only.

Both also register in the core's dataset registry (``imdb``, ``glue_sst2``, ``glue_qqp``).
Nothing is downloaded unless ``download`` is true.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from bnn_shared.data import LabeledTensors, data_root, missing_dataset_error, register_dataset
from bnn_shared.data.splits import TensorSplit
from bnn_shared.errors import ConfigError, MissingDependencyError

from ..config import DatasetConfig
from .imdb_pickle import PICKLE_FILE, REFERENCE_PICKLE, read_imdb_pickle

__all__ = [
    "imdb_arrays",
    "imdb_source",
    "imdb_splits",
    "glue_splits",
    "pad_sequences",
    "IMDB_FILE",
    "PICKLE_FILE",
]

IMDB_FILE = "imdb.npz"
IMDB_SEED = 113
START_CHAR, OOV_CHAR, INDEX_FROM = 1, 2, 3
GLUE_MAX_LENGTH = 128
GLUE_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def pad_sequences(sequences, maxlen: int) -> np.ndarray:
    """Keras ``pad_sequences`` with its defaults: zeros in front, the last ``maxlen`` kept."""
    out = np.zeros((len(sequences), maxlen), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        kept = list(sequence)[-maxlen:]
        if kept:
            out[row, maxlen - len(kept) :] = kept
    return out


def _keras_processing(x_train, y_train, x_test, y_test, num_words: int):
    rng = np.random.RandomState(IMDB_SEED)
    order = np.arange(len(x_train))
    rng.shuffle(order)
    x_train, y_train = x_train[order], y_train[order]
    order = np.arange(len(x_test))
    rng.shuffle(order)
    x_test, y_test = x_test[order], y_test[order]

    def encode(words) -> list[int]:
        ranks = [START_CHAR] + [int(w) + INDEX_FROM for w in words]
        return [w if w < num_words else OOV_CHAR for w in ranks]

    return [encode(x) for x in x_train], y_train, [encode(x) for x in x_test], y_test


def imdb_source(root: Path) -> Path | None:
    """The IMDB file that is read: ``<root>/imdb/imdb_data.pkl``, else
    ``<root>/imdb/imdb.npz``, else ``./downloaded_dataset/imdb/imdb_data.pkl`` (the
    reference's path); ``None`` when none exists."""
    folder = Path(root) / "imdb"
    for path in (folder / PICKLE_FILE, folder / IMDB_FILE, REFERENCE_PICKLE):
        if path.is_file():
            return path
    return None


def imdb_arrays(root: Path, num_words: int = 10000, maxlen: int = 500, download=False):
    """``(x_train, y_train, x_test, y_test)`` int64 arrays, Keras-processed and padded.

    Reads the file :func:`imdb_source` finds: the reference's pickle (already processed:
    the last ``maxlen`` columns are kept, ids must be below ``num_words``) or the Keras
    ``imdb.npz`` (processed here); without either, falls back to Hugging Face's ``imdb``
    (the ``nlp`` extra, from its cache unless ``download``), ranked as Keras does
    (:func:`hf_imdb_ranks`).
    """
    folder = Path(root) / "imdb"
    path = imdb_source(root)
    if path is not None and path.name == PICKLE_FILE:
        return read_imdb_pickle(path, maxlen, num_words)
    if path is not None:
        with np.load(path, allow_pickle=True) as data:
            parts = [data[key] for key in ("x_train", "y_train", "x_test", "y_test")]
    else:
        parts = hf_imdb_ranks(folder, download)
    x_train, y_train, x_test, y_test = _keras_processing(*parts, num_words)
    return (
        pad_sequences(x_train, maxlen),
        np.asarray(y_train, dtype=np.int64),
        pad_sequences(x_test, maxlen),
        np.asarray(y_test, dtype=np.int64),
    )


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("<br />", " "))


def hf_imdb_ranks(folder: Path, download: bool):
    """Hugging Face ``imdb`` as Keras-style word ranks (1 = most frequent training word).

    An approximation of the Keras file (its tokenizer and ranking are not published with
    it): lower-cased ``[a-z0-9']+`` words, ranked by frequency over the training reviews.
    """
    if not download:
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    try:
        import datasets
    except ImportError as exc:
        raise _missing_imdb(
            folder,
            "--download needs the Hugging Face fallback: pip install 'hadamrnn[nlp]'",
        ) from exc
    try:
        data = datasets.load_dataset("imdb", cache_dir=str(folder / "huggingface"))
    except Exception as exc:  # offline or missing cache: many error types, one meaning
        raise _missing_imdb(folder, f"the Hugging Face fallback failed: {exc}") from exc
    train = [_words(t) for t in data["train"]["text"]]
    test = [_words(t) for t in data["test"]["text"]]
    counts = Counter(word for review in train for word in review)
    rank = {word: i + 1 for i, (word, _) in enumerate(counts.most_common())}
    unknown = len(rank) + 1

    def as_ranks(reviews):
        out = np.empty(len(reviews), dtype=object)
        for i, review in enumerate(reviews):
            out[i] = [rank.get(word, unknown) for word in review]
        return out

    labels = [np.asarray(data[s]["label"], dtype=np.int64) for s in ("train", "test")]
    return as_ranks(train), labels[0], as_ranks(test), labels[1]


def _missing_imdb(folder: Path, reason: str):
    return missing_dataset_error(
        "imdb",
        folder,
        missing=[PICKLE_FILE, IMDB_FILE],
        reason=f"put the reference's {PICKLE_FILE} or the Keras {IMDB_FILE} "
        "(keras.datasets.imdb downloads it to ~/.keras/datasets/imdb.npz) there, or run "
        f"from a folder holding {REFERENCE_PICKLE.as_posix()}; {reason}; "
        "DATASET.NAME sdigits or pdigits needs no file",
    )


def _imdb_tensors(root: Path, num_words: int, maxlen: int, download: bool):
    x_train, y_train, x_test, y_test = imdb_arrays(root, num_words, maxlen, download)
    half = len(x_test) // 2
    as_t = torch.from_numpy
    return {
        "train": (as_t(x_train), as_t(y_train)),
        "val": (as_t(x_test[half:]), as_t(y_test[half:])),
        "test": (as_t(x_test[:half]), as_t(y_test[:half])),
    }


def imdb_splits(cfg: DatasetConfig, data_dir=None, download: bool = False):
    """IMDB as :class:`~hadamrnn.dataset_tools.Splits` (token ids ``(N, 500)``)."""
    from . import Splits

    parts = _imdb_tensors(data_root(data_dir), cfg.vocab_size, cfg.seq_length or 500, download)
    splits = {name: TensorSplit(x, y) for name, (x, y) in parts.items()}
    return Splits("imdb", splits["train"], splits["val"], splits["test"], num_classes=2)


def _glue_modules(download: bool):
    if not download:  # read the local caches only
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(
            f"GLUE needs the optional packages datasets and transformers (module {exc.name!r} "
            "is missing): pip install 'hadamrnn[nlp]'"
        ) from exc
    return datasets, transformers


def glue_tensors(task: str, root: Path, download: bool, max_length: int = GLUE_MAX_LENGTH):
    """``{split: (input_ids (N, max_length), labels)}`` of GLUE ``task`` (``sst2``/``qqp``)."""
    if task not in ("sst2", "qqp"):
        raise ConfigError(f"DATASET.TASK must be sst2 or qqp for GLUE, got {task!r}")
    datasets, transformers = _glue_modules(download)
    folder = Path(root) / "glue"
    try:
        data = datasets.load_dataset("glue", task, cache_dir=str(folder))
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            "bert-base-uncased", cache_dir=str(folder / "bert-base-uncased")
        )
    except Exception as exc:  # offline or missing cache: many error types, one meaning
        raise missing_dataset_error(f"glue/{task}", folder, reason=str(exc)) from exc
    out = {}
    for split, hf_split in GLUE_SPLITS.items():
        rows = data[hf_split]
        if task == "qqp":
            texts = [
                f"{a} [SEP] [SEP] {b}"
                for a, b in zip(rows["question1"], rows["question2"], strict=True)
            ]
        else:
            texts = list(rows["sentence"])
        ids = tokenizer(texts, truncation=True, padding="max_length", max_length=max_length)
        out[split] = (torch.tensor(ids["input_ids"]), torch.tensor(rows["label"]))
    return out


def glue_splits(cfg: DatasetConfig, data_dir=None, download: bool = False):
    """GLUE ``cfg.task`` as :class:`~hadamrnn.dataset_tools.Splits` (test labels hidden)."""
    from . import Splits

    parts = glue_tensors(
        cfg.task or "", data_root(data_dir), download, cfg.seq_length or GLUE_MAX_LENGTH
    )
    splits = {name: TensorSplit(x, y) for name, (x, y) in parts.items()}
    return Splits(
        f"glue_{cfg.task}",
        splits["train"],
        splits["val"],
        splits["test"],
        num_classes=2,
        test_labels=False,
    )


@register_dataset(
    "imdb",
    input_shape=(500,),
    num_classes=2,
    task="sequence_classification",
    splits=("train", "val", "test"),
)
def imdb(split, root, download, *, num_words=10000, maxlen=500):
    """IMDB reviews as Keras word ranks, pre-padded to the last ``maxlen`` tokens."""
    x, y = _imdb_tensors(root, num_words, maxlen, download)[split]
    return LabeledTensors(x, y)


def _register_glue(task: str) -> None:
    @register_dataset(
        f"glue_{task}",
        input_shape=(GLUE_MAX_LENGTH,),
        num_classes=2,
        task="sequence_classification",
        splits=("train", "val", "test"),
        requires="nlp",
    )
    def glue(split, root, download):
        x, y = glue_tensors(task, root, download)[split]
        return LabeledTensors(x, y)


for _task in ("sst2", "qqp"):
    _register_glue(_task)

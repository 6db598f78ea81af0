"""Text for character-level language models: read it, number its characters, cut it into
training blocks, and sample new text from a trained model.

The pieces follow Karpathy's nanoGPT ``data/shakespeare_char/prepare.py``, ``train.py``
and ``model.py``, so a reader can put the two side by side::

    text = zn.text.load_text("input.txt")          # open(input_file_path).read()
    vocab = zn.text.CharVocab.from_text(text)      # chars = sorted(set(data)); stoi, itos
    ids = vocab.encode(text)                       # encode(data)           (n,) int64
    train, val = zn.text.split(ids)                # n = int(0.9 * len(data))
    rng = np.random.default_rng(0)
    x, y = zn.text.random_blocks(train, 64, 32, rng)     # get_batch('train'): (32, 64) each
    x, y = zn.text.sequence_windows(train, 64)     # every block once, for an epoch of fit
    zn.text.generate(model, vocab, "ROMEO:", 200, temperature=0.8, top_k=10, seed=0)

Token ids are integer arrays: one text is ``(n,)``, a batch of blocks ``(batch, time)``
(``block_size`` is nanoGPT's name for ``time``). ``y`` is always ``x`` shifted by one
character: the character that follows each one, the target of next-character prediction.

Nothing here downloads anything: ``load_text`` reads a file the user has (for the tiny
Shakespeare corpus, nanoGPT's prepare.py names its source, the char-rnn repository's
``data/tinyshakespeare/input.txt``). Nothing here imports the network either:
``generate`` takes any object with ``input_shape``, ``output_activation`` and ``predict``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from zeronn._validation import non_negative_number, number_in, positive_number

__all__ = [
    "CharVocab",
    "LanguageModel",
    "generate",
    "load_text",
    "random_blocks",
    "sequence_windows",
    "split",
]

# The code points of a str as one uint32 array (and back): encode and decode without a
# Python loop over the characters. "surrogatepass" keeps lone surrogates, which a str may hold.
_UTF32 = "utf-32-le"


def _code_points(text: str) -> NDArray[np.uint32]:
    return np.frombuffer(text.encode(_UTF32, "surrogatepass"), dtype="<u4")


def _from_code_points(codes: NDArray) -> str:
    return np.ascontiguousarray(codes, dtype="<u4").tobytes().decode(_UTF32, "surrogatepass")


# ---------------------------------------------------------------------------------------
# Reading a text file


def load_text(path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
    """The whole content of the plain-text file at ``path``, as one str.

    Read as Python's ``open(path, encoding=encoding).read()`` does (nanoGPT's prepare.py
    reads its input so): line endings ``\\r\\n`` and ``\\r`` become ``\\n``. A missing file,
    a directory, an empty file, bytes that are not valid ``encoding`` or an unknown
    encoding raise a ValueError naming the path and what to do. Nothing is downloaded.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"text file {str(p)!r} not found: check the path (zeronn downloads "
                         "nothing; save the text there first, e.g. the tiny Shakespeare "
                         "corpus as input.txt)")
    if p.is_dir():
        raise ValueError(f"{str(p)!r} is a directory, not a text file: pass the path of "
                         "the file inside it, e.g. os.path.join(folder, 'input.txt')")
    try:
        with open(p, encoding=encoding) as f:
            text = f.read()
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r} for {str(p)!r}: pass a codec "
                         "Python knows, e.g. 'utf-8', 'latin-1', 'cp1252', 'shift_jis'"
                         ) from None
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start:exc.start + 4].hex(" ")
        hint = ("'utf-16'" if exc.object[:2] in (b"\xff\xfe", b"\xfe\xff")
                else "the one it was saved in, e.g. 'latin-1', 'cp1252' or 'shift_jis'")
        raise ValueError(f"{str(p)!r} is not valid {encoding} text (bytes {bad} at byte "
                         f"{exc.start}): pass encoding= {hint}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {str(p)!r}: {exc.strerror or exc}") from None
    if not text:
        raise ValueError(f"text file {str(p)!r} is empty: a language model needs text to "
                         "learn from; check that the file was saved completely")
    return text


# ---------------------------------------------------------------------------------------
# Characters <-> ids


class CharVocab:
    """A character vocabulary: character ``chars[i]`` has id ``i``.

    ``CharVocab.from_text(text)`` is nanoGPT's ``chars = sorted(set(data))`` with
    ``stoi = {ch: i for i, ch in enumerate(chars)}`` and ``itos`` its inverse; the
    constructor takes the characters in the order wanted (each a one-character str,
    no repeats), e.g. from a saved :meth:`config`.

    >>> v = CharVocab.from_text("hello")
    >>> v.chars, len(v), v.encode("hole").tolist(), v.decode([3, 1])
    (('e', 'h', 'l', 'o'), 4, [1, 3, 2, 0], 'oh')
    """

    def __init__(self, chars: Iterable[str]) -> None:
        if isinstance(chars, str):
            chars = list(chars)
        items = tuple(chars)
        if not items:
            raise ValueError("a CharVocab needs at least one character; got none")
        for i, c in enumerate(items):
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars[{i}] is {c!r}: each entry must be a single "
                                 "character (a str of length 1)")
        stoi = {c: i for i, c in enumerate(items)}
        if len(stoi) != len(items):
            dup = next(c for i, c in enumerate(items) if stoi[c] != i)
            raise ValueError(f"character {dup!r} appears more than once in chars: each "
                             "character needs exactly one id")
        self._chars = items
        self._stoi = MappingProxyType(stoi)
        self._itos = MappingProxyType(dict(enumerate(items)))
        self._codes = _code_points("".join(items))         # id -> code point
        self._order = np.argsort(self._codes)               # for encode's binary search
        self._sorted_codes = self._codes[self._order]

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of ``text``: its distinct characters, sorted by code point."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}: read the "
                             "file with zn.text.load_text(path) first")
        if not text:
            raise ValueError("text is empty: a vocabulary needs at least one character")
        return cls(sorted(set(text)))

    @property
    def chars(self) -> tuple[str, ...]:
        """The characters, ``chars[i]`` the one with id ``i`` (nanoGPT's ``itos``)."""
        return self._chars

    @property
    def stoi(self) -> Mapping[str, int]:
        """Character -> id (read-only), nanoGPT's ``stoi``."""
        return self._stoi

    @property
    def itos(self) -> Mapping[int, str]:
        """Id -> character (read-only), nanoGPT's ``itos``."""
        return self._itos

    def __len__(self) -> int:
        return len(self._chars)

    def __contains__(self, char: object) -> bool:
        return char in self._stoi

    def encode(self, text: str) -> NDArray[np.int64]:
        """``text`` -> ids ``(len(text),)`` int64; a character outside the vocabulary
        raises a ValueError naming it and its position."""
        if not isinstance(text, str):
            raise ValueError(f"encode takes a str, got {type(text).__name__}")
        codes = _code_points(text)
        pos = np.searchsorted(self._sorted_codes, codes)
        pos_c = np.minimum(pos, len(self._chars) - 1)
        unknown = self._sorted_codes[pos_c] != codes
        if unknown.any():
            at = int(np.argmax(unknown))
            raise ValueError(
                f"character {text[at]!r} at position {at} is not in the vocabulary of "
                f"{len(self)} characters: build the vocabulary from a text that holds it, "
                "or remove it")
        return self._order[pos_c].astype(np.int64)

    def decode(self, ids: ArrayLike) -> str:
        """Ids (a list or 1-D integer array) -> the str of their characters; an id outside
        ``0 .. len(vocab) - 1`` raises a ValueError naming it and its position."""
        arr = np.asarray(ids)
        if arr.size == 0 and arr.ndim == 1:
            return ""
        if arr.ndim != 1:
            hint = ("pass a 1-D sequence, e.g. decode(ids[0]) for one row of a batch"
                    if arr.ndim > 1 else "pass a sequence, e.g. decode([i])")
            raise ValueError(f"decode takes a 1-D sequence of ids, got shape {arr.shape}: "
                             f"{hint}")
        if arr.dtype.kind not in "iu":
            raise ValueError(f"ids must be integers, got dtype {arr.dtype}: convert them, "
                             "e.g. ids.astype(np.int64)")
        bad = (arr < 0) | (arr >= len(self))
        if bad.any():
            at = int(np.argmax(bad))
            raise ValueError(f"id {int(arr[at])} at position {at} is outside the "
                             f"vocabulary (ids 0 .. {len(self) - 1}): was the model built "
                             "with another vocabulary?")
        return _from_code_points(self._codes[arr])

    def config(self) -> dict[str, str]:
        """A JSON-safe description: ``{"chars": "<every character, in id order>"}``."""
        return {"chars": "".join(self._chars)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CharVocab:
        """The vocabulary :meth:`config` describes (``chars`` a str or a list of str)."""
        if not isinstance(config, Mapping) or "chars" not in config:
            raise ValueError(f"a CharVocab config is a mapping with key 'chars', got "
                             f"{config!r}")
        chars = config["chars"]
        if not isinstance(chars, (str, list, tuple)):
            raise ValueError(f"config['chars'] must be a str or a list of characters, got "
                             f"{type(chars).__name__}")
        return cls(chars)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CharVocab):
            return NotImplemented
        return self._chars == other._chars

    def __hash__(self) -> int:
        return hash(self._chars)

    def __repr__(self) -> str:
        shown = "".join(self._chars)
        if len(shown) > 60:
            shown = shown[:57]
            return f"CharVocab({len(self)} chars: {shown!r}...)"
        return f"CharVocab({len(self)} chars: {shown!r})"


# ---------------------------------------------------------------------------------------
# Training data


def _ids(name: str, data: Any) -> NDArray:
    """``data`` as a 1-D integer array (the same array when it is one: a memmap stays)."""
    arr = data if isinstance(data, np.ndarray) else np.asarray(data)
    if arr.ndim != 1:
        raise ValueError(f"{name} has shape {arr.shape}, expected a 1-D sequence of ids "
                         "(n,): encode the whole text once, e.g. vocab.encode(text)")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer ids, got dtype {arr.dtype}: use "
                         "vocab.encode(text), or convert with .astype(np.int64)")
    return arr


def split(ids: ArrayLike, fraction: float = 0.9) -> tuple[NDArray, NDArray]:
    """The first ``fraction`` of ``ids`` for training, the rest for validation.

    nanoGPT's ``n = int(0.9 * len(data)); train_data = data[:n]; val_data = data[n:]``:
    a cut, not a shuffle, so validation text is text the model has not seen. Returns two
    views of ``ids`` (a list is converted to an array first). Note ``fraction`` is the
    share *kept for training*, where ``fit``'s ``validation_split`` is the share held out.
    """
    arr = _ids("ids", ids)
    f = float(number_in("fraction", fraction, 0, 1, low_open=True, high_open=True))
    n = int(f * len(arr))   # < len(arr) for any fraction < 1: validation is never empty
    if n == 0:
        raise ValueError(f"split of {len(arr)} ids with fraction={f} leaves no training "
                         "data: use a longer text or a larger fraction")
    return arr[:n], arr[n:]


def _check_block_size(data: NDArray, block_size: Any, name: str) -> int:
    t = positive_number("block_size", block_size, integer=True)
    if t >= len(data):
        raise ValueError(f"block_size={t} must be smaller than the {len(data)} ids of "
                         f"{name} (a block and its target shifted by one need "
                         f"block_size + 1 ids): use a smaller block_size or more text")
    return int(t)


def random_blocks(data: ArrayLike, block_size: int, batch_size: int,
                  rng: np.random.Generator) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """A batch of random blocks and their next characters: nanoGPT's ``get_batch``.

    ``ix = rng.integers(len(data) - block_size, size=batch_size)``; row ``b`` of ``x`` is
    ``data[ix[b] : ix[b] + block_size]`` and of ``y`` is ``data[ix[b] + 1 : ix[b] + 1 +
    block_size]``. Both ``(batch_size, block_size)`` int64 (copies, gathered through one
    index matrix). ``data`` is a 1-D integer array (a ``np.memmap`` of uint16, as nanoGPT
    saves ``train.bin``, works: only the rows drawn are read). ``rng`` is the caller's
    ``np.random.Generator``, so a seeded run draws the same batches.
    """
    arr = _ids("data", data)
    t = _check_block_size(arr, block_size, "data")
    b = positive_number("batch_size", batch_size, integer=True)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a np.random.Generator, got {rng!r}: create one "
                         "once, rng = np.random.default_rng(seed), and pass it to every "
                         "call (a seed per call would draw the same batch each time)")
    ix = rng.integers(len(arr) - t, size=b)
    index = ix[:, None] + np.arange(t)                 # (batch_size, block_size)
    x = np.asarray(np.take(arr, index), dtype=np.int64)   # asarray: a memmap's rows
    y = np.asarray(np.take(arr, index + 1), dtype=np.int64)   # come back as an ndarray
    return x, y


def sequence_windows(data: ArrayLike, block_size: int, stride: int | None = None
                     ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every block of ``data`` and its next characters, for an epoch of ``fit``.

    Window ``i`` starts at ``i * stride``: ``x[i] = data[s : s + block_size]``,
    ``y[i] = data[s + 1 : s + 1 + block_size]``; both ``(n, block_size)`` with
    ``n = (len(data) - block_size - 1) // stride + 1``. ``stride`` defaults to
    ``block_size``: the inputs do not overlap and each character is a target once. Ids
    after the last whole window are left out (with the default stride, ``x.ravel()`` is
    ``data[:n * block_size]`` and ``y.ravel()`` is ``data[1:n * block_size + 1]``).

    When ``data`` is an int64 array, ``x`` and ``y`` are read-only *views* of it
    (``np.lib.stride_tricks.sliding_window_view``): no memory is used even with
    ``stride=1``. Any other integer dtype (or a list) is converted to int64 once, and the
    views are of that copy. Copy them (``x.copy()``) before writing into them.
    """
    arr = _ids("data", data)
    t = _check_block_size(arr, block_size, "data")
    s = t if stride is None else positive_number("stride", stride, integer=True)
    if arr.dtype != np.int64:
        arr = arr.astype(np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(arr, t + 1)[::s]  # (n, T + 1)
    return windows[:, :-1], windows[:, 1:]


# ---------------------------------------------------------------------------------------
# Sampling


class LanguageModel(Protocol):
    """What :func:`generate` needs of a model (a ``zn.Sequential`` has it; any object will do).

    ``input_shape[0]`` is ``T``, the longest context the model takes (``None``: any
    length); ``output_activation`` is ``"softmax"`` (``predict`` gives probabilities) or
    ``"identity"`` (logits); ``predict(ids)`` maps ids ``(1, t)`` int64, ``1 <= t <= T``,
    to ``(1, t, vocab)`` scores for every step, or ``(1, vocab)`` for the last step only.
    """

    @property
    def input_shape(self) -> tuple[Any, ...]: ...

    @property
    def output_activation(self) -> str: ...

    def predict(self, X: Any) -> Any: ...


def _context_length(model: Any) -> int | None:
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, (tuple, list)) or not shape:
        raise ValueError(f"model.input_shape must be a non-empty tuple whose first entry "
                         f"is the longest context (block_size), got {shape!r}")
    t = shape[0]
    if t is None:
        return None
    return int(positive_number("model.input_shape[0]", t, integer=True))


def _last_log_probs(model: Any, context: NDArray[np.int64], n_vocab: int,
                    kind: str) -> NDArray[np.float64]:
    """The model's log-probabilities ``(vocab,)`` for the character after ``context``."""
    out = np.asarray(model.predict(context[None, :]))
    t = len(context)
    if out.ndim == 3 and out.shape[:2] == (1, t):
        scores = out[0, -1]
    elif out.ndim == 2 and out.shape[0] == 1:
        scores = out[0]
    else:
        raise ValueError(f"model.predict on ids of shape (1, {t}) returned shape "
                         f"{out.shape}, expected (1, {t}, {n_vocab}) (every step) or "
                         f"(1, {n_vocab}) (the last step)")
    if scores.shape[0] != n_vocab:
        raise ValueError(f"the model gives {scores.shape[0]} scores per step but the "
                         f"vocabulary has {n_vocab} characters: pass the vocabulary the "
                         "model was trained with")
    scores = scores.astype(np.float64)
    if kind == "softmax":
        if np.isnan(scores).any() or (scores < 0).any() or not scores.sum() > 0:
            raise ValueError("the model's probabilities are negative, NaN or all zero: "
                             "is output_activation right, or did training diverge?")
        with np.errstate(divide="ignore"):
            logp = np.log(scores / scores.sum())   # a probability of 0 stays impossible
    else:
        if not np.isfinite(scores).all():
            raise ValueError("the model's logits hold NaN or inf: did training diverge?")
        shifted = scores - scores.max()
        logp = shifted - np.log(np.exp(shifted).sum())   # log-softmax, stable
    return logp


def generate(model: LanguageModel, vocab: CharVocab, prompt: str, length: int,
             temperature: float = 1.0, top_k: int | None = None,
             seed: int | np.random.Generator | None = None) -> str:
    """``prompt`` followed by ``length`` characters sampled from ``model`` one at a time.

    nanoGPT's ``generate``: each step crops the context to its last ``T`` ids
    (``idx[:, -block_size:]``, ``T = model.input_shape[0]``), takes the last step's
    scores, turns them into log-probabilities (stably, from probabilities or logits per
    ``model.output_activation``), divides by ``temperature`` (below 1 sharper, above 1
    flatter), keeps only the ``top_k`` largest (the rest set to -inf; ties with the k-th
    are kept), applies softmax and draws the next id with one ``np.random.Generator``
    made from ``seed`` (an int for a reproducible run, a Generator, or None).

    ``top_k`` larger than the vocabulary keeps every character (nanoGPT's sample.py
    passes top_k=200 to a 65-character model).

    ``temperature=0`` means greedy: always the most likely character (the first of equal
    ones), and no random draw. ``top_k=1`` is greedy too (drawing among equal ones, as
    nanoGPT does).

    ``prompt`` is a non-empty str of characters in ``vocab``; ``""`` starts from a newline
    (as nanoGPT's sample.py does) when the vocabulary has ``"\\n"``, and the newline is not
    part of the result. The new text is ``result[len(prompt):]``. ``model`` is anything
    with :class:`LanguageModel`'s three members.
    """
    if not isinstance(vocab, CharVocab):
        raise ValueError(f"vocab must be a CharVocab, got {type(vocab).__name__}: build it "
                         "with zn.text.CharVocab.from_text(text)")
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a str, got {type(prompt).__name__}")
    n = int(number_in("length", length, 0, integer=True))
    temp = non_negative_number("temperature", temperature)
    # A top_k beyond the vocabulary keeps every character (nanoGPT: min(top_k, vocab)).
    k = None if top_k is None else min(int(number_in("top_k", top_k, 1, integer=True)),
                                       len(vocab))
    if not callable(getattr(model, "predict", None)):
        raise ValueError(f"model must have a predict(ids) method, got "
                         f"{type(model).__name__}: pass a trained network")
    kind = getattr(model, "output_activation", None)
    if kind not in ("softmax", "identity"):
        raise ValueError(f"model.output_activation must be 'softmax' (predict gives "
                         f"probabilities) or 'identity' (logits), got {kind!r}")
    block = _context_length(model)
    if prompt:
        try:
            start = vocab.encode(prompt)
        except ValueError as exc:
            raise ValueError(f"prompt: {exc}") from None
    elif "\n" in vocab:
        start = vocab.encode("\n")
    else:
        raise ValueError("prompt is empty and the vocabulary has no newline to start "
                         "from: pass a prompt of at least one character")
    rng = np.random.default_rng(seed)
    ids = np.empty(len(start) + n, dtype=np.int64)
    ids[:len(start)] = start
    for end in range(len(start), len(ids)):
        context = ids[:end] if block is None else ids[max(0, end - block):end]
        logp = _last_log_probs(model, context, len(vocab), kind)
        if temp == 0:
            ids[end] = int(np.argmax(logp))
            continue
        logits = logp / temp
        if k is not None:
            kth = np.partition(logits, -k)[-k]
            logits[logits < kth] = -math.inf
        p = np.exp(logits - logits.max())
        ids[end] = rng.choice(len(vocab), p=p / p.sum())
    return prompt + vocab.decode(ids[len(start):])

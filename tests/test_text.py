"""zeronn.text: reading a text file, the character vocabulary, training blocks as nanoGPT
cuts them, and sampling from a model (small fake models here: text sits below the network)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import zeronn as zn
from zeronn.text import (
    CharVocab,
    generate,
    load_text,
    random_blocks,
    sequence_windows,
    split,
)

# ---------------------------------------------------------------------------------------
# load_text


def test_load_text_reads_the_file_as_open_read_does(tmp_path):
    path = tmp_path / "input.txt"
    path.write_bytes("First Citizen:\r\nBefore we proceed\nこんにちは\r".encode())
    expected = "First Citizen:\nBefore we proceed\nこんにちは\n"
    assert load_text(path) == expected
    assert load_text(str(path)) == expected
    with open(path, encoding="utf-8") as f:   # nanoGPT's prepare.py: f.read()
        assert load_text(path) == f.read()


def test_datasets_names_the_same_load_text():
    assert zn.datasets.load_text is zn.text.load_text is load_text
    assert "load_text" in zn.datasets.__all__
    assert "text" in zn.__all__


def test_load_text_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(ValueError, match=r"nope\.txt.*not found.*downloads nothing"):
        load_text(path)


def test_load_text_directory(tmp_path):
    with pytest.raises(ValueError, match=r"is a directory.*path of the file inside it"):
        load_text(tmp_path)


def test_load_text_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.txt.*is empty"):
        load_text(path)


def test_load_text_undecodable_bytes_say_which_encoding_to_pass(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.txt.*not valid utf-8.*byte 3.*encoding="):
        load_text(path)
    assert load_text(path, encoding="latin-1") == "café au lait"


def test_load_text_utf16_bom_is_pointed_at(tmp_path):
    path = tmp_path / "u16.txt"
    path.write_bytes("hello".encode("utf-16"))
    with pytest.raises(ValueError, match="'utf-16'"):
        load_text(path)
    assert load_text(path, encoding="utf-16") == "hello"


def test_load_text_unknown_encoding(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("abc", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown encoding 'utf-99'"):
        load_text(path, encoding="utf-99")


# ---------------------------------------------------------------------------------------
# CharVocab


def test_vocab_from_text_is_nanogpt_sorted_set():
    data = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    v = CharVocab.from_text(data)
    chars = sorted(set(data))                           # prepare.py, verbatim
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = dict(enumerate(chars))
    assert v.chars == tuple(chars)
    assert len(v) == len(chars)
    assert dict(v.stoi) == stoi and dict(v.itos) == itos
    ids = v.encode(data)
    assert ids.dtype == np.int64 and ids.shape == (len(data),)
    assert ids.tolist() == [stoi[c] for c in data]      # encode = lambda s: [stoi[c] ...]
    assert v.decode(ids) == "".join(itos[i] for i in ids.tolist())
    assert "F" in v and "Q" not in v


def test_vocab_encode_unknown_character_names_it_and_its_position():
    v = CharVocab.from_text("abc")
    with pytest.raises(ValueError, match=r"character 'z' at position 2 is not in the "
                                         r"vocabulary of 3 characters"):
        v.encode("abzaz")
    with pytest.raises(ValueError, match="takes a str"):
        v.encode([0, 1])  # type: ignore[arg-type]
    assert v.encode("").shape == (0,)


def test_vocab_encode_past_the_largest_code_point():
    v = CharVocab.from_text("ab")
    with pytest.raises(ValueError, match="'😀' at position 1"):
        v.encode("a😀")


def test_vocab_decode_accepts_lists_and_integer_arrays():
    v = CharVocab.from_text("hello")
    assert v.decode([3, 1]) == "oh"
    assert v.decode(np.array([3, 1], dtype=np.int32)) == "oh"
    assert v.decode(np.array([3, 1], dtype=np.uint8)) == "oh"
    assert v.decode([]) == ""
    assert v.decode(np.array([], dtype=np.int64)) == ""


@pytest.mark.parametrize(("ids", "match"), [
    ([0, 4, 1], r"id 4 at position 1 is outside the vocabulary \(ids 0 \.\. 3\)"),
    ([-1], r"id -1 at position 0"),
    ([0.0, 1.0], r"must be integers, got dtype float64"),
    ([[0, 1]], r"shape \(1, 2\).*decode\(ids\[0\]\)"),
    (2, r"shape \(\).*decode\(\[i\]\)"),
])
def test_vocab_decode_errors(ids, match):
    with pytest.raises(ValueError, match=match):
        CharVocab.from_text("hello").decode(ids)


def test_vocab_config_is_json_safe_and_round_trips():
    v = CharVocab.from_text("To be, or not to be\n日本語 😀\t")
    cfg = json.loads(json.dumps(v.config()))
    back = CharVocab.from_config(cfg)
    assert back == v and hash(back) == hash(v)
    assert back.chars == v.chars
    assert CharVocab.from_config({"chars": list(v.chars)}) == v
    # the order is the ids': a vocabulary in another order is another vocabulary
    assert CharVocab("ba") != CharVocab("ab")
    assert CharVocab("ab") != "ab"


@pytest.mark.parametrize(("config", "match"), [
    ({}, "key 'chars'"),
    ([1, 2], "key 'chars'"),
    ({"chars": 5}, "str or a list"),
])
def test_vocab_from_config_errors(config, match):
    with pytest.raises(ValueError, match=match):
        CharVocab.from_config(config)


@pytest.mark.parametrize(("chars", "match"), [
    ([], "at least one character"),
    (["a", "bc"], r"chars\[1\] is 'bc'"),
    (["a", 1], r"chars\[1\] is 1"),
    ("aba", "'a' appears more than once"),
])
def test_vocab_constructor_errors(chars, match):
    with pytest.raises(ValueError, match=match):
        CharVocab(chars)


def test_vocab_from_text_errors():
    with pytest.raises(ValueError, match="empty"):
        CharVocab.from_text("")
    with pytest.raises(ValueError, match="must be a str"):
        CharVocab.from_text(b"abc")  # type: ignore[arg-type]


def test_vocab_repr():
    assert repr(CharVocab.from_text("ba\n")) == r"CharVocab(3 chars: '\nab')"
    long = CharVocab([chr(c) for c in range(65, 65 + 80)])
    r = repr(long)
    assert r.startswith("CharVocab(80 chars: 'ABC") and r.endswith("...)")


@given(st.text(min_size=1))
def test_vocab_round_trip_on_any_text(text):
    v = CharVocab.from_text(text)
    ids = v.encode(text)
    assert v.decode(ids) == text
    assert ids.tolist() == [v.stoi[c] for c in text]
    assert list(v.chars) == sorted(set(text))
    assert CharVocab.from_config(json.loads(json.dumps(v.config()))) == v


@given(st.lists(st.characters(), min_size=1, max_size=30, unique=True), st.data())
def test_vocab_in_any_order_round_trips(chars, data):
    v = CharVocab(chars)
    text = data.draw(st.text(alphabet=st.sampled_from(chars)))
    assert v.decode(v.encode(text)) == text
    assert v.encode("".join(chars)).tolist() == list(range(len(chars)))


# ---------------------------------------------------------------------------------------
# split


@pytest.mark.parametrize("n", [10, 11, 99, 1003])
def test_split_is_nanogpt_cut(n):
    data = np.arange(n, dtype=np.int64)
    train, val = split(data)
    cut = int(0.9 * n)                                   # n = int(0.9*len(data))
    assert np.array_equal(train, data[:cut]) and np.array_equal(val, data[cut:])
    assert np.shares_memory(train, data) and np.shares_memory(val, data)


def test_split_fraction_and_lists():
    train, val = split([1, 2, 3, 4], fraction=0.5)
    assert train.tolist() == [1, 2] and val.tolist() == [3, 4]
    train, val = split(np.arange(7), fraction=np.nextafter(1.0, 0.0))  # floor: val not empty
    assert len(train) == 6 and val.tolist() == [6]


@pytest.mark.parametrize(("ids", "fraction", "match"), [
    (np.arange(10), 0.0, r"fraction must be a number in \(0, 1\)"),
    (np.arange(10), 1.0, r"fraction must be a number in \(0, 1\)"),
    (np.arange(10), 0.05, "leaves no training data"),
    (np.zeros((2, 5), dtype=int), 0.9, r"shape \(2, 5\).*1-D"),
    (np.zeros(5), 0.9, "integer ids, got dtype float64"),
])
def test_split_errors(ids, fraction, match):
    with pytest.raises(ValueError, match=match):
        split(ids, fraction)


# ---------------------------------------------------------------------------------------
# random_blocks


def test_random_blocks_is_nanogpt_get_batch():
    data = np.random.default_rng(1).integers(0, 65, size=500).astype(np.uint16)
    T, B = 8, 4
    x, y = random_blocks(data, T, B, np.random.default_rng(7))
    ix = np.random.default_rng(7).integers(len(data) - T, size=B)   # train.py's get_batch
    expected_x = np.stack([data[i:i + T].astype(np.int64) for i in ix])
    expected_y = np.stack([data[i + 1:i + 1 + T].astype(np.int64) for i in ix])
    assert x.dtype == y.dtype == np.int64
    assert x.shape == y.shape == (B, T)
    assert np.array_equal(x, expected_x) and np.array_equal(y, expected_y)


def test_random_blocks_seeded_runs_repeat_and_successive_calls_differ():
    data = np.arange(1000)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    first = random_blocks(data, 16, 8, rng_a)
    assert all(np.array_equal(a, b) for a, b in zip(first, random_blocks(data, 16, 8, rng_b)))
    assert not np.array_equal(first[0], random_blocks(data, 16, 8, rng_a)[0])


def test_random_blocks_reach_every_start_including_the_last():
    data = np.arange(12)
    x, y = random_blocks(data, 4, 2000, np.random.default_rng(0))
    assert set(x[:, 0].tolist()) == set(range(12 - 4))      # starts 0 .. len - T - 1
    assert y.max() == 11                                    # the last id is a target


def test_random_blocks_reads_a_uint16_memmap(tmp_path):
    path = tmp_path / "train.bin"
    ids = np.arange(300, dtype=np.uint16) % 65
    ids.tofile(path)                                        # prepare.py: train_ids.tofile
    data = np.memmap(path, dtype=np.uint16, mode="r")
    x, y = random_blocks(data, 10, 3, np.random.default_rng(0))
    assert type(x) is np.ndarray and type(y) is np.ndarray
    assert x.dtype == np.int64 and np.array_equal(x[:, 1:], y[:, :-1])


@given(st.integers(2, 200), st.data())
def test_random_blocks_y_is_x_shifted_by_one_in_the_data(n, data):
    T = data.draw(st.integers(1, n - 1))
    B = data.draw(st.integers(1, 8))
    seed = data.draw(st.integers(0, 2**32 - 1))
    ids = np.random.default_rng(seed).integers(0, 5, size=n)
    x, y = random_blocks(ids, T, B, np.random.default_rng(seed))
    starts = np.random.default_rng(seed).integers(n - T, size=B)
    assert x.shape == y.shape == (B, T)
    for b, s in enumerate(starts):
        assert np.array_equal(x[b], ids[s:s + T])
        assert np.array_equal(y[b], ids[s + 1:s + 1 + T])


@pytest.mark.parametrize(("args", "match"), [
    ((np.arange(10), 10, 2), r"block_size=10 must be smaller than the 10 ids"),
    ((np.arange(10), 0, 2), "block_size must be a positive integer"),
    ((np.arange(10), 2.0, 2), "block_size must be a positive integer"),
    ((np.arange(10), 3, 0), "batch_size must be a positive integer"),
    ((np.arange(10.0), 3, 2), "integer ids"),
    ((np.zeros((2, 10), dtype=int), 3, 2), "1-D"),
])
def test_random_blocks_argument_errors(args, match):
    with pytest.raises(ValueError, match=match):
        random_blocks(*args, np.random.default_rng(0))


def test_random_blocks_wants_a_generator_not_a_seed():
    with pytest.raises(ValueError, match=r"np.random.Generator.*default_rng\(seed\)"):
        random_blocks(np.arange(10), 3, 2, 0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# sequence_windows


def test_sequence_windows_default_is_non_overlapping_views():
    data = np.arange(23, dtype=np.int64)
    x, y = sequence_windows(data, 5)
    n = (23 - 5 - 1) // 5 + 1
    assert x.shape == y.shape == (n, 5) == (4, 5)
    assert np.array_equal(x.ravel(), data[:20]) and np.array_equal(y.ravel(), data[1:21])
    assert np.shares_memory(x, data) and np.shares_memory(y, data)
    assert not x.flags.writeable and not y.flags.writeable


def test_sequence_windows_stride_one_is_every_window_without_copying():
    data = np.arange(10_000, dtype=np.int64)
    x, y = sequence_windows(data, 64, stride=1)
    assert x.shape == (10_000 - 64, 64)
    assert np.shares_memory(x, data)
    assert np.array_equal(x[-1], data[-65:-1]) and np.array_equal(y[-1], data[-64:])


def test_sequence_windows_other_dtypes_become_int64():
    x, y = sequence_windows(np.arange(11, dtype=np.uint16), 3)
    assert x.dtype == y.dtype == np.int64
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert sequence_windows([0, 1, 2, 3], 3)[1].tolist() == [[1, 2, 3]]


@given(st.integers(2, 120), st.data())
def test_sequence_windows_cover_the_data(n, data):
    T = data.draw(st.integers(1, n - 1))
    stride = data.draw(st.none() | st.integers(1, 2 * T))
    ids = np.random.default_rng(n).integers(0, 7, size=n)
    x, y = sequence_windows(ids, T, stride)
    s = T if stride is None else stride
    count = (n - T - 1) // s + 1
    assert x.shape == y.shape == (count, T)
    for i in range(count):
        assert np.array_equal(x[i], ids[i * s:i * s + T])
        assert np.array_equal(y[i], ids[i * s + 1:i * s + T + 1])
    assert count * s + T + 1 > n                   # no further whole window fits
    if s <= T:                                     # no gaps: every id up to the last window
        seen = np.zeros(n, dtype=bool)
        for i in range(count):
            seen[i * s:i * s + T + 1] = True
        assert seen[:(count - 1) * s + T + 1].all()
        assert n - ((count - 1) * s + T + 1) < s   # what is left out is less than a stride


def test_sequence_windows_errors():
    with pytest.raises(ValueError, match="block_size=5 must be smaller"):
        sequence_windows(np.arange(5), 5)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        sequence_windows(np.arange(10), 3, stride=0)


# ---------------------------------------------------------------------------------------
# generate, with fake models that have a network's three members


class FixedModel:
    """Gives the same next-character distribution whatever the context; records contexts."""

    def __init__(self, probs, block_size=8, output_activation="softmax", sequence=True):
        self.probs = np.asarray(probs, dtype=np.float64)
        self.input_shape = (block_size,)
        self.output_activation = output_activation
        self.sequence = sequence
        self.contexts: list[np.ndarray] = []

    def predict(self, ids):
        ids = np.asarray(ids)
        assert ids.ndim == 2 and ids.shape[0] == 1 and ids.dtype == np.int64
        self.contexts.append(ids[0].copy())
        scores = (self.probs if self.output_activation == "softmax"
                  else np.log(self.probs) + 3.0)           # logits: any shift is the same
        if not self.sequence:
            return scores[None, :]
        return np.broadcast_to(scores, (1, ids.shape[1], len(scores))).copy()


class NextCharModel:
    """Logits that put the next id after the *last* one: 'a' -> 'b' -> 'c' -> 'a' ..."""

    input_shape = (4,)
    output_activation = "identity"

    def __init__(self, n_vocab):
        self.n = n_vocab

    def predict(self, ids):
        out = np.full((1, ids.shape[1], self.n), -5.0)
        out[0, np.arange(ids.shape[1]), (ids[0] + 1) % self.n] = 5.0
        return out


VOCAB4 = CharVocab("abcd")
P4 = np.array([0.1, 0.2, 0.3, 0.4])


def chi_square(counts, expected_p):
    expected = np.asarray(expected_p) * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def counts_of(text, vocab):
    return np.bincount(vocab.encode(text), minlength=len(vocab)).astype(np.float64)


def test_generate_uses_the_last_step_and_returns_prompt_then_new_text():
    assert generate(NextCharModel(3), CharVocab("abc"), "ab", 7, temperature=0) == "abcabcabc"
    # sampling a near-certain distribution gives the same
    assert generate(NextCharModel(3), CharVocab("abc"), "a", 5, seed=0) == "abcabc"


@pytest.mark.parametrize("kind", ["softmax", "identity"])
@pytest.mark.parametrize("sequence", [True, False])
def test_generate_top_k_one_and_temperature_zero_are_greedy(kind, sequence):
    model = FixedModel(P4, output_activation=kind, sequence=sequence)
    assert generate(model, VOCAB4, "a", 30, top_k=1, seed=1) == "a" + "d" * 30
    assert generate(model, VOCAB4, "a", 30, temperature=0) == "a" + "d" * 30
    assert generate(model, VOCAB4, "a", 30, temperature=0, top_k=3) == "a" + "d" * 30


def test_generate_seeded_runs_repeat():
    model = FixedModel(P4)
    a = generate(model, VOCAB4, "ab", 200, seed=5)
    assert a == generate(model, VOCAB4, "ab", 200, seed=5)
    assert a != generate(model, VOCAB4, "ab", 200, seed=6)
    assert len(a) == 202 and a.startswith("ab")
    assert generate(model, VOCAB4, "ab", 0, seed=5) == "ab"
    # a Generator is used as it is: the same draws as the seed it was made from
    assert generate(model, VOCAB4, "ab", 200, seed=np.random.default_rng(5)) == a


def test_generate_crops_the_context_to_the_model_block_size():
    model = FixedModel(P4, block_size=5)
    out = generate(model, VOCAB4, "abcdabc", 12, seed=0)
    ids = VOCAB4.encode(out)
    assert len(model.contexts) == 12
    for step, context in enumerate(model.contexts):
        end = 7 + step                       # ids before the one this step draws
        assert np.array_equal(context, ids[max(0, end - 5):end])
    assert max(len(c) for c in model.contexts) == 5


def test_generate_short_prompt_grows_the_context_up_to_block_size():
    model = FixedModel(P4, block_size=4)
    generate(model, VOCAB4, "a", 6, seed=0)
    assert [len(c) for c in model.contexts] == [1, 2, 3, 4, 4, 4]


def test_generate_no_cropping_when_the_model_takes_any_length():
    model = FixedModel(P4)
    model.input_shape = (None,)
    generate(model, VOCAB4, "abcdabcdabcd", 5, seed=0)
    assert [len(c) for c in model.contexts] == [12, 13, 14, 15, 16]


# 99.9% quantile of chi-square with 3 degrees of freedom: a correct sampler fails 1 in 1000
# seeds; the seeds are fixed, so the test is deterministic.
CHI2_3_999 = 16.27


@pytest.mark.parametrize("kind", ["softmax", "identity"])
def test_generate_frequencies_follow_the_distribution(kind):
    out = generate(FixedModel(P4, output_activation=kind), VOCAB4, "a", 4000, seed=0)
    assert chi_square(counts_of(out[1:], VOCAB4), P4) < CHI2_3_999


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_generate_temperature_reshapes_the_distribution(temperature):
    out = generate(FixedModel(P4), VOCAB4, "a", 4000, temperature=temperature, seed=1)
    counts = counts_of(out[1:], VOCAB4)
    tempered = P4 ** (1 / temperature)
    tempered /= tempered.sum()                # softmax(log p / T) = p^(1/T), renormalized
    assert chi_square(counts, tempered) < CHI2_3_999
    assert chi_square(counts, P4) > 50        # and not the untempered one
    share_d = counts[3] / counts.sum()
    assert (share_d > 0.5) if temperature < 1 else (share_d < 0.35)


def test_generate_top_k_beyond_the_vocabulary_keeps_everything():
    """nanoGPT's sample.py asks for top_k=200 of 65 characters: min(top_k, vocab)."""
    assert generate(FixedModel(P4), VOCAB4, "a", 50, top_k=200, seed=3) == \
        generate(FixedModel(P4), VOCAB4, "a", 50, seed=3)


def test_generate_top_k_keeps_only_the_k_most_likely():
    out = generate(FixedModel(P4), VOCAB4, "a", 3000, top_k=2, seed=2)
    counts = counts_of(out[1:], VOCAB4)
    assert counts[0] == counts[1] == 0
    p = np.array([3, 4]) / 7
    assert ((counts[2:] - p * counts.sum()) ** 2 / (p * counts.sum())).sum() < 10.83  # df 1


def test_generate_never_draws_a_zero_probability():
    out = generate(FixedModel([0.0, 0.5, 0.0, 0.5]), VOCAB4, "b", 500, temperature=3, seed=0)
    assert set(out) == {"b", "d"}


def test_generate_empty_prompt_starts_from_a_newline():
    vocab = CharVocab.from_text("ab\n")
    model = FixedModel([0.2, 0.4, 0.4], block_size=4)
    out = generate(model, vocab, "", 10, seed=0)
    assert len(out) == 10 and "\n" in vocab
    assert model.contexts[0].tolist() == vocab.encode("\n").tolist()
    with pytest.raises(ValueError, match="prompt is empty and the vocabulary has no newline"):
        generate(FixedModel(P4), VOCAB4, "", 3)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"length": -1}, r"length must be an integer in \[0, inf\]"),
    ({"length": 2.5}, "length must be an integer"),
    ({"length": True}, "length must be an integer"),
    ({"temperature": -0.1}, "temperature must be a finite number >= 0"),
    ({"temperature": float("nan")}, "temperature must be a finite number >= 0"),
    ({"top_k": 0}, r"top_k must be an integer in \[1, "),
    ({"top_k": 2.5}, r"top_k must be an integer"),
    ({"prompt": "abz"}, r"prompt: character 'z' at position 2"),
    ({"prompt": 3}, "prompt must be a str"),
    ({"vocab": "abcd"}, "vocab must be a CharVocab"),
])
def test_generate_argument_errors(kwargs, match):
    args = {"model": FixedModel(P4), "vocab": VOCAB4, "prompt": "ab", "length": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        generate(**args)


def test_generate_model_errors():
    model = FixedModel(P4)
    model.output_activation = "sigmoid"
    with pytest.raises(ValueError, match=r"output_activation must be 'softmax'.*'sigmoid'"):
        generate(model, VOCAB4, "a", 2)
    model = FixedModel(P4)
    model.input_shape = ()
    with pytest.raises(ValueError, match="input_shape must be a non-empty tuple"):
        generate(model, VOCAB4, "a", 2)
    with pytest.raises(ValueError, match=r"must have a predict\(ids\) method, got str"):
        generate("model", VOCAB4, "a", 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gives 3 scores per step but the vocabulary has 4"):
        generate(FixedModel([0.2, 0.3, 0.5]), VOCAB4, "a", 2)
    model = FixedModel(P4)
    model.predict = lambda ids: np.zeros((4,))  # type: ignore[method-assign]
    with pytest.raises(ValueError, match=r"returned shape \(4,\), expected \(1, 1, 4\)"):
        generate(model, VOCAB4, "a", 2)
    with pytest.raises(ValueError, match="negative, NaN or all zero"):
        generate(FixedModel([0.0, 0.0, 0.0, 0.0]), VOCAB4, "a", 2)
    with pytest.raises(ValueError, match="logits hold NaN"):
        generate(FixedModel([np.nan, 1, 1, 1], output_activation="identity"), VOCAB4, "a", 2)

"""Model files: one zip of ``.npy`` arrays plus a JSON header, read without pickle.

A file holds ``header.json`` and one ``.npy`` member per array. The header names the
format and its version, the zeronn version, the kind of object, the network (its class,
input shape, dtype and layers, each with its type and constructor arguments), its
optimizer (name, hyperparameters, step count, learning rate), its training history and
random-generator state, an object's metadata, and a manifest giving every array
member's dtype and shape. Each layer's parameters (in ``param_names`` order) and state
arrays (BatchNorm's running statistics) are members ``network/<i>/<name>.npy``.

Kinds: ``"network"`` is a :class:`Sequential` or :class:`MLP`; front ends (the
scikit-learn estimators, the CLI's tabular models) add theirs with :func:`register_kind`
and declare them as ``zeronn.model_kinds`` entry points, so a file of a kind whose module
is not imported yet still loads. Such a class provides ``zeronn_state()`` ->
``(network or None, JSON-safe metadata, dict of numeric arrays)`` and the classmethod
``from_zeronn_state(network, metadata, arrays)``, which raises ``ValueError`` on
inconsistent parts.

Loading trusts nothing: the layer types and model classes come from fixed tables
(``zeronn.layers.LAYERS``, Sequential/MLP), every layer's arguments are checked by its
constructor, every member is checked against the manifest (and the parameters against
the rebuilt layers) *before* it is read, reads are bounded by those sizes (so a zip bomb
cannot inflate), arrays go through ``np.load(..., allow_pickle=False)``, and no module
named by the file is ever imported. Any defect is a ``ValueError`` that names the file
and the problem; a missing path is the usual ``OSError``.

Files of format 1 (zeronn 0.1: an MLP given by its layer sizes and activations) still
load. Writing is atomic (``zeronn._atomic``): a temporary file in the target's folder,
fsync, then ``os.replace``; on any failure the temporary file is removed and an existing
file is left untouched.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import math
import os
import re
import warnings
import zipfile
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from zeronn._atomic import atomic_write
from zeronn._version import __version__
from zeronn.activations import ACTIVATIONS, get_activation
from zeronn.history import History
from zeronn.layers import LAYERS, Dense, Layer
from zeronn.models import MLP, Sequential
from zeronn.network import Network
from zeronn.optim import OPTIMIZERS, Optimizer

__all__ = ["ENTRY_POINT_GROUP", "FORMAT_NAME", "FORMAT_VERSION", "kinds", "load",
           "register_kind", "save"]

FORMAT_NAME = "zeronn-model"
FORMAT_VERSION = 2
HEADER = "header.json"
#: the entry-point group where packages declare the kinds of model file they read
ENTRY_POINT_GROUP = "zeronn.model_kinds"

# The kind of a file holding a bare network, and the classes such a file may hold: the
# file chooses among these names, it never names a class or module itself.
NETWORK_KIND = "network"
_V1_NETWORK_KIND = "mlp"  # format 1's name for it
_MODEL_CLASSES: dict[str, type[Sequential]] = {"Sequential": Sequential, "MLP": MLP}

# The dtypes an array member may have: numbers only (no object, string or structured data).
_DTYPES = {name: np.dtype(name) for name in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64")}
_PARAM_DTYPES = ("float32", "float64")
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\Z")
_KIND = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")

_MAX_HEADER_BYTES = 64 * 2**20
_NPY_HEADER_MAX = 10_000 + 16  # numpy's own cap on a .npy header, plus magic and length
# Weights barely compress (random-looking floats), so a member that would inflate more
# than 100-fold is not a model file (deflate allows ~1032:1, the zip-bomb trick).
_MAX_DEFLATE_RATIO = 100
_MAX_NDIM = 32
# Building layers allocates state sized by the input (BatchNorm's statistics) before any
# member backs it, so the values per sample a file may declare are capped (2**26 = 64 Mi).
_MAX_INPUT_SIZE = 2**26
_MAX_LAYERS = 10_000
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same model gives the same bytes


class _Bad(Exception):
    """A defect of the file being loaded (turned into a ValueError naming the file)."""


# -- the kinds of model file ---------------------------------------------------------------
_KINDS: dict[str, type[Any]] = {}


def register_kind(kind: str, cls: type[Any]) -> None:
    """Makes ``zeronn.save``/``zeronn.load`` handle instances of ``cls`` as files of ``kind``.

    ``cls`` provides ``zeronn_state()`` and the classmethod ``from_zeronn_state(net, meta,
    arrays)`` (see the module docstring). Declare the same name as an entry point in the
    ``zeronn.model_kinds`` group (``"kind" = "package.module:Class"``) so files of the
    kind load before the module is imported. Registering a kind again for another class
    raises ``ValueError``.
    """
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise ValueError(f"a model kind is a dotted name such as 'mypackage.Model', "
                         f"got {kind!r}")
    if kind in (NETWORK_KIND, _V1_NETWORK_KIND):
        raise ValueError(f"the kind {kind!r} is zeronn's own (networks): choose another name")
    if not isinstance(cls, type) or not all(
            callable(getattr(cls, m, None)) for m in ("zeronn_state", "from_zeronn_state")):
        raise ValueError(f"{cls!r} must be a class with zeronn_state() and the classmethod "
                         "from_zeronn_state(net, meta, arrays)")
    old = _KINDS.get(kind)
    # The same class again (a module reloaded) replaces the old entry; another class would
    # make the files of one kind mean two things.
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__,
                                                                   cls.__qualname__):
        raise ValueError(f"the kind {kind!r} is already registered for "
                         f"{old.__module__}.{old.__qualname__}")
    _KINDS[kind] = cls


def kinds() -> list[str]:
    """The kinds of model file this installation reads (registered or declared)."""
    declared = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return sorted({NETWORK_KIND, *_KINDS, *declared})


def _kind_of(obj: Any) -> str | None:
    """The kind registered for ``obj``'s class or its nearest registered base class."""
    by_class = {cls: kind for kind, cls in _KINDS.items()}
    for cls in type(obj).__mro__:
        if cls in by_class:
            return by_class[cls]
    return None


def _class_of_kind(kind: str) -> type[Any]:
    """The registered class of ``kind``, else the one an installed package declares for it.

    Only entry points of the ``zeronn.model_kinds`` group are looked at, by exact name: the
    file picks among the declared names, never a module of its choice.
    """
    if kind in _KINDS:
        return _KINDS[kind]
    found = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
             if ep.name == kind]
    if not found:
        raise _Bad(f"unknown kind {kind!r}; this zeronn loads {', '.join(kinds())}")
    try:
        cls = found[0].load()  # imports the module its package declared for this kind
    except ImportError as exc:  # the file is fine, the installation lacks something
        raise ImportError(f"model files of kind {kind!r} need {found[0].value}, which cannot "
                          f"be imported ({exc}): install its missing dependencies") from exc
    if kind not in _KINDS:  # the module did not register itself: register what it declared
        try:
            register_kind(kind, cls)
        except ValueError as exc:
            raise _Bad(f"the entry point of kind {kind!r} is not a model class ({exc})") \
                from None
    return _KINDS[kind]


# -- save --------------------------------------------------------------------------------
def _json_safe(name: str, value: Any) -> Any:
    """``value`` after a JSON round trip (tuples become lists), or a ValueError naming it."""
    try:
        return json.loads(json.dumps(value, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not JSON-serialisable ({exc}): use plain str, int, "
                         "float, bool, None, lists and dicts") from None


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The generator's bit-generator state as JSON (arrays as ``{"dtype", "data"}``)."""

    def enc(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: enc(x) for k, x in v.items()}
        if isinstance(v, np.ndarray):
            return {"dtype": v.dtype.name, "data": v.tolist()}
        if isinstance(v, np.integer):
            return int(v)
        return v

    state = rng.bit_generator.state
    if state.get("bit_generator") not in _BIT_GENERATORS:
        raise ValueError(f"net.rng uses bit generator {state.get('bit_generator')!r}; a model "
                         f"file can store {', '.join(_BIT_GENERATORS)}: use "
                         "np.random.default_rng(seed)")
    out: dict[str, Any] = enc(state)
    return out


def _check_optimizer_state(opt: Optimizer, state: list[dict[str, NDArray]],
                           net: Network) -> None:
    """The state must be for ``net``: one dict per parameter position (the flat buffer that
    ``fit`` steps, or the per-layer arrays), with the keys this optimizer creates."""
    if not state:
        return
    if len(state) == 1:
        shapes = [(net.n_params,)]
    elif len(state) == len(net.params):
        shapes = [p.shape for p in net.params]
    else:
        raise ValueError(f"the {opt.name} state has {len(state)} entries; the network has "
                         f"1 flat buffer or {len(net.params)} arrays")
    want = set(opt.init_state(np.zeros(1, net.dtype)))
    for i, (s, shape) in enumerate(zip(state, shapes)):
        if set(s) != want:
            raise ValueError(f"{opt.name} state entry {i} has keys {sorted(s)}, expected "
                             f"{sorted(want)}")
        for k, v in s.items():
            if v.shape != shape or v.dtype != net.dtype:
                raise ValueError(f"{opt.name} state {i}/{k} is {v.dtype.name} {v.shape}, "
                                 f"expected {net.dtype.name} {shape}")


class _Writer:
    """Collects array members and their manifest entries for one file."""

    def __init__(self) -> None:
        self.arrays: dict[str, NDArray] = {}
        self.manifest: dict[str, dict[str, Any]] = {}

    def add(self, member: str, arr: NDArray) -> None:
        a = np.asarray(arr)
        if a.dtype.name not in _DTYPES:
            raise ValueError(f"array {member!r} has dtype {a.dtype}; a model file stores "
                             f"numbers only ({', '.join(_DTYPES)})")
        # (np.asarray, not np.ascontiguousarray, which turns a 0-d array into 1-d)
        self.arrays[member] = np.asarray(a, dtype=a.dtype.newbyteorder("<"), order="C")
        self.manifest[member] = {"dtype": a.dtype.name, "shape": list(a.shape)}


def _check_savable(what: str, layer: Layer) -> None:
    """A layer a model file can name (in ``LAYERS``), else the user's ``ValueError``."""
    cls = type(layer)
    if LAYERS.get(cls.__name__) is not cls:
        raise ValueError(f"{what} is a {cls.__name__}, which model files cannot hold: "
                         f"they hold zeronn.layers.LAYERS ({', '.join(LAYERS)}); add a new "
                         "layer class to that table")


def _rebuild(cls: type[Layer], config: dict[str, Any], where: str, depth: int = 0) -> Layer:
    """``cls(**config)``; a composite's ``layers`` entries are rebuilt first (each a type
    from ``LAYERS`` and its config, checked the same way, nested at most 8 deep)."""
    if not cls.composite:
        return cls(**config)
    entries = config.get("layers")
    if not isinstance(entries, list) or not 1 <= len(entries) <= _MAX_LAYERS or depth >= 8:
        raise _Bad(f"{where} ({cls.__name__}) must list 1 to {_MAX_LAYERS} layers, nested at "
                   f"most 8 deep")
    subs = [_layer_of(entry, f"{where}'s layer {j}", f"{where}'s layer {j}", depth + 1)
            for j, entry in enumerate(entries)]
    return cls(**{**config, "layers": subs})


def _layer_of(entry: Any, where: str, label: str, depth: int = 0) -> Layer:
    """The layer a header entry names: a type from ``LAYERS`` and its config, checked by
    the layer's own constructor (``where`` names the entry in the header, ``label`` the
    layer in messages)."""
    name = _get(entry, "type", str, where)
    cls = LAYERS.get(name)
    if cls is None:
        raise _Bad(f"{label} has type {name!r}, not a zeronn layer "
                   f"({', '.join(LAYERS)}): was it written by a newer zeronn?")
    config = _get(entry, "config", dict, where)
    act = config.get("activation")
    if isinstance(act, str):
        _known_activation(act)
    try:
        return _rebuild(cls, config, label, depth)
    except (TypeError, ValueError) as exc:
        raise _Bad(f"{label} ({name}) has an invalid config {config!r}: {exc}") from None


def _layer_entry(i: int, layer: Layer, w: _Writer) -> dict[str, Any]:
    """The header entry of layer ``i`` (1-based); its arrays go to ``network/<i>/``."""
    cls = type(layer)
    _check_savable(f"layer {i}", layer)
    act = layer.activation
    if act is not None:
        try:
            known = get_activation(act.name) is act
        except ValueError:
            known = False
        if not known:
            raise ValueError(f"activation {act.name!r} is not the registered one of that name, "
                             "so loading could not find it: use "
                             "zeronn.register_activation to make it known by name")
    for _, sub in getattr(layer, "walk", list)():  # a composite's layers: the same rules
        _check_savable(f"layer {i}'s sublayer {sub!r}", sub)
    config = _json_safe(f"layer {i}'s config()", layer.config())
    try:  # what load will do: a layer that cannot be rebuilt would make a useless file
        _rebuild(cls, config, f"layer {i}")
    except (TypeError, ValueError, _Bad) as exc:
        raise ValueError(f"layer {i} ({layer!r}) cannot be rebuilt from its config() "
                         f"{config!r} ({exc})") from None
    for name, value in zip(layer.param_names, layer.params):
        w.add(f"network/{i}/{name}.npy", value)
    state = layer.state
    for name in layer.state_names:
        if state[name].dtype.kind == "f" and not np.isfinite(state[name]).all():
            raise ValueError(f"layer {i}'s state {name!r} holds NaN or inf (training "
                             "diverged), so nothing was saved: train again with a smaller "
                             "learning rate")
        w.add(f"network/{i}/{name}.npy", state[name])
    return {"type": cls.__name__, "config": config, "params": list(layer.param_names),
            "state": list(layer.state_names)}


def _network_header(net: Network, w: _Writer) -> dict[str, Any]:
    model_class = "MLP" if isinstance(net, MLP) else "Sequential"
    if not isinstance(net, Sequential):
        raise ValueError(f"cannot save a bare {type(net).__name__}: build a zeronn.Sequential "
                         "from the same layers")
    # load refuses non-finite weights, so such a file would be useless: say so now.
    if not np.isfinite(net.flat_params).all():
        raise ValueError("the network's weights hold NaN or inf (training diverged), so "
                         "nothing was saved: train again with a smaller learning rate")
    layers = [_layer_entry(i, layer, w) for i, layer in enumerate(net.layers, start=1)]
    init = getattr(net, "init", None)
    head: dict[str, Any] = {
        "class": model_class,
        "input_shape": list(net.input_shape),
        "dtype": net.dtype.name,
        "layers": layers,
        "init": init if isinstance(init, str) else None,
        "seed": net.seed if isinstance(net.seed, int) else None,
        "rng": _rng_state(net.rng),
        "optimizer": None,
        "history": None,
    }
    opt = net.optimizer
    if opt is not None:
        if OPTIMIZERS.get(opt.name) is not type(opt):
            warnings.warn(f"the optimizer {type(opt).__name__} is not one of zeronn's "
                          f"({', '.join(OPTIMIZERS)}), so it is not saved: fit after loading "
                          "needs an optimizer", UserWarning, stacklevel=3)
        else:
            sd = opt.state_dict()
            _check_optimizer_state(opt, sd["state"], net)
            if not all(np.isfinite(v).all() for st in sd["state"] for v in st.values()):
                raise ValueError(f"the {opt.name} optimizer state holds NaN or inf (training "
                                 "diverged), so nothing was saved: train again with a "
                                 "smaller learning rate")
            state_keys: list[list[str]] = []
            for i, s in enumerate(sd["state"]):
                state_keys.append(sorted(s))
                for k in sorted(s):
                    w.add(f"optimizer/{i}/{k}.npy", s[k])
            head["optimizer"] = {
                "name": opt.name,
                "hyperparameters": _json_safe("optimizer hyperparameters",
                                              sd["hyperparameters"]),
                "t": int(sd["t"]),
                "lr": float(sd["lr"]),
                "state_keys": state_keys,
            }
    hist = net.history
    if hist is not None:
        keys: list[str] = []
        for k, values in hist.items():
            try:
                arr = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                arr = None
            if arr is None or not isinstance(k, str) or not _NAME.match(k) or arr.ndim > 2:
                warnings.warn(f"history[{k!r}] is not a list of numbers (or of equal-length "
                              "lists), so it is not saved", UserWarning, stacklevel=3)
                continue
            keys.append(k)
            w.add(f"history/{k}.npy", arr)
        best = hist.best_epoch
        head["history"] = {
            "keys": keys,
            "stopped_early": bool(hist.stopped_early),
            "interrupted": bool(hist.interrupted),
            "best_epoch": None if best is None else int(best),
        }
    return head


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Writes ``obj`` (a :class:`Sequential` or :class:`MLP`, or an object of a registered
    kind: an estimator, a CLI model) to one file, atomically.

    The file is a zip of ``.npy`` arrays plus ``header.json``: the layers (types and
    arguments), parameters and layer states, the last optimizer and its state (so
    ``fit(..., optimizer=None)`` resumes exactly), the training history, the network's
    random-generator state, and an object's metadata and arrays (scaling, class labels).
    Load it with :func:`load`.
    """
    if isinstance(obj, Network):
        kind, net, meta, extra = NETWORK_KIND, obj, {}, {}
    else:
        found = _kind_of(obj)
        if found is None:
            raise ValueError(f"cannot save a {type(obj).__name__}: zeronn.save takes an MLP or "
                             "a Sequential, a zeronn.sklearn estimator, a zeronn.tabular "
                             "model, or an object of a kind given to "
                             "zeronn.persistence.register_kind")
        kind = found
        net, meta, extra = obj.zeronn_state()
        if net is not None and not isinstance(net, Network):
            raise ValueError(f"{type(obj).__name__}.zeronn_state() returned "
                             f"{type(net).__name__} instead of a network or None")
    w = _Writer()
    header: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "zeronn_version": __version__,
        "kind": kind,
        "network": None if net is None else _network_header(net, w),
        "meta": _json_safe("the model's metadata", meta),
        "extra": [],
    }
    for name, arr in dict(extra).items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"extra array name {name!r} must be a Python identifier")
        w.add(f"extra/{name}.npy", arr)
        header["extra"].append(name)
    header["arrays"] = w.manifest
    text = json.dumps(header, indent=1, allow_nan=True).encode("utf-8")
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo(HEADER, _ZIP_DATE), text)
        for member, arr in w.arrays.items():
            info = zipfile.ZipInfo(member, _ZIP_DATE)
            with zf.open(info, "w", force_zip64=arr.nbytes > 2**30) as m:
                np.lib.format.write_array(m, arr, allow_pickle=False)


# -- load: the header ---------------------------------------------------------------------
def _get(d: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
    """``d[key]`` checked to be of ``types`` (bool is never an int here)."""
    if not isinstance(d, dict):
        raise _Bad(f"{where} must be a JSON object")
    if key not in d:
        raise _Bad(f"the header lacks {where}.{key}")
    v = d[key]
    tt = types if isinstance(types, tuple) else (types,)
    if isinstance(v, bool) and bool not in tt:
        raise _Bad(f"{where}.{key} must be {' or '.join(t.__name__ for t in tt)}, got {v!r}")
    if not isinstance(v, tt):
        raise _Bad(f"{where}.{key} must be {' or '.join(t.__name__ for t in tt)}, "
                   f"got {type(v).__name__}")
    return v


def _int(d: Any, key: str, where: str, lo: int = 0) -> int:
    v = _get(d, key, int, where)
    if v < lo:
        raise _Bad(f"{where}.{key} must be >= {lo}, got {v}")
    return int(v)


def _read_header(zf: zipfile.ZipFile) -> dict[str, Any]:
    info = zf.getinfo(HEADER)
    if info.file_size > _MAX_HEADER_BYTES:
        raise _Bad(f"{HEADER} declares {info.file_size} bytes (limit {_MAX_HEADER_BYTES})")
    _check_compression(info)
    with zf.open(info) as m:
        raw = m.read(_MAX_HEADER_BYTES + 1)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Bad(f"{HEADER} is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise _Bad(f"{HEADER} does not describe a {FORMAT_NAME!r} file")
    version = _get(header, "format_version", int, "header")
    if version > FORMAT_VERSION:
        raise _Bad(f"format version {version} was written by a newer zeronn "
                   f"({header.get('zeronn_version')!r}); this zeronn reads versions up to "
                   f"{FORMAT_VERSION}: upgrade zeronn (pip install -U zeronn)")
    if version < 1:
        raise _Bad(f"header.format_version must be >= 1, got {version}")
    _get(header, "zeronn_version", str, "header")
    return header


def _check_compression(info: zipfile.ZipInfo) -> None:
    if info.compress_type == zipfile.ZIP_STORED:
        if info.compress_size != info.file_size:
            raise _Bad(f"member {info.filename!r} is stored with {info.compress_size} bytes "
                       f"but declares {info.file_size}")
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        if info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 65536:
            raise _Bad(f"member {info.filename!r} declares {info.file_size} bytes from "
                       f"{info.compress_size} compressed, a ratio no model file has")
    else:
        raise _Bad(f"member {info.filename!r} uses zip compression method "
                   f"{info.compress_type}; only stored or deflated members are read")


def _manifest(header: dict[str, Any]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    raw = _get(header, "arrays", dict, "header")
    out: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
    for member, entry in raw.items():
        where = f"arrays[{member!r}]"
        dt = _get(entry, "dtype", str, where)
        if dt not in _DTYPES:
            raise _Bad(f"{where} has dtype {dt!r}; allowed: {', '.join(_DTYPES)}")
        shape = _get(entry, "shape", list, where)
        if len(shape) > _MAX_NDIM or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise _Bad(f"{where}.shape must be a list of sizes >= 0, got {shape!r}")
        out[member] = (_DTYPES[dt], tuple(shape))
    return out


# -- load: the arrays ----------------------------------------------------------------------
class _Members:
    """Reads the array members of one zip, each checked against the manifest."""

    def __init__(self, zf: zipfile.ZipFile, manifest: dict[str, tuple[np.dtype, tuple[int, ...]]],
                 file_size: int) -> None:
        self.zf, self.manifest = zf, manifest
        self.unread = set(manifest)
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise _Bad(f"the zip holds duplicate members {dup}")
        self.infos = {i.filename: i for i in infos}
        missing = sorted(set(manifest) - set(self.infos))
        extra = sorted(set(self.infos) - set(manifest) - {HEADER})
        if missing:
            raise _Bad(f"arrays listed in the header are missing: {missing}")
        if extra:
            raise _Bad(f"the file holds arrays the header does not list: {extra}")
        # Declared sizes against the header, before reading anything.
        total = 0
        for member, (dt, shape) in manifest.items():
            info = self.infos[member]
            _check_compression(info)
            nbytes = math.prod(shape) * dt.itemsize
            if not nbytes <= info.file_size <= nbytes + _NPY_HEADER_MAX:
                raise _Bad(f"{member} declares {info.file_size} bytes, but an array of "
                           f"{dt.name} {shape} needs {nbytes} plus a small header")
            total += info.compress_size
        if total > file_size:
            raise _Bad(f"the members declare {total} bytes, more than the file's {file_size}")

    def read(self, member: str, dtype: np.dtype | None = None,
             shape: tuple[int, ...] | None = None) -> NDArray:
        """The array ``member``; ``dtype``/``shape``: what the architecture requires."""
        if member not in self.manifest:
            raise _Bad(f"the header's manifest lacks {member}")
        mdt, mshape = self.manifest[member]
        if dtype is not None and mdt != dtype:
            raise _Bad(f"{member} is listed as {mdt.name}, but the header says {dtype.name}")
        if shape is not None and mshape != shape:
            raise _Bad(f"{member} is listed with shape {mshape}, but the header's "
                       f"architecture needs {shape}")
        self.unread.discard(member)
        info = self.infos[member]
        with self.zf.open(info) as m:
            data = m.read(info.file_size + 1)
        if len(data) != info.file_size:
            raise _Bad(f"{member} holds {len(data)} bytes, not the declared {info.file_size}")
        buf = io.BytesIO(data)
        try:
            version = np.lib.format.read_magic(buf)
            if version == (1, 0):
                hshape, fortran, hdt = np.lib.format.read_array_header_1_0(buf)
            elif version == (2, 0):
                hshape, fortran, hdt = np.lib.format.read_array_header_2_0(buf)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as exc:
            raise _Bad(f"{member} is not a valid .npy array ({exc})") from None
        want_dt = mdt.newbyteorder("<")
        if hdt != want_dt or tuple(hshape) != mshape or fortran:
            raise _Bad(f"{member} holds {hdt} {tuple(hshape)}"
                       f"{' (Fortran order)' if fortran else ''}, but the header lists "
                       f"{mdt.name} {mshape}")
        if len(data) != buf.tell() + math.prod(mshape) * mdt.itemsize:
            raise _Bad(f"{member} has {len(data) - buf.tell()} data bytes, expected "
                       f"{math.prod(mshape) * mdt.itemsize}")
        arr = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(arr, np.ndarray) or arr.dtype != want_dt or arr.shape != mshape:
            raise _Bad(f"{member} did not read back as {mdt.name} {mshape}")
        return arr.astype(mdt, copy=False)


def _finite(member: str, arr: NDArray) -> NDArray:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise _Bad(f"{member} holds NaN or inf")
    return arr


def _decode_rng(state: Any) -> np.random.Generator:
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        raise _Bad(f"network.rng names no allowed bit generator ({', '.join(_BIT_GENERATORS)})")

    def dec(v: Any, depth: int = 0) -> Any:
        if depth > 4:
            raise _Bad("network.rng is nested too deeply")
        if isinstance(v, dict) and set(v) == {"dtype", "data"}:
            if v["dtype"] not in ("uint32", "uint64") or not isinstance(v["data"], list) or \
                    len(v["data"]) > 1024:
                raise _Bad("network.rng holds an invalid array")
            return np.array(v["data"], dtype=v["dtype"])
        if isinstance(v, dict):
            return {k: dec(x, depth + 1) for k, x in v.items()}
        if isinstance(v, (bool, float, list)) or v is None:
            raise _Bad(f"network.rng holds an invalid value {v!r}")
        return v

    decoded = dec(state)
    # The name is one of a fixed tuple of numpy classes, not a module the file chooses.
    bitgen = getattr(np.random, state["bit_generator"])()
    try:
        bitgen.state = decoded
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise _Bad(f"network.rng is not a valid {state['bit_generator']} state ({exc})") \
            from None
    return np.random.Generator(bitgen)


def _dtype(head: Any, where: str) -> np.dtype:
    dt_name = _get(head, "dtype", str, where)
    if dt_name not in _PARAM_DTYPES:
        raise _Bad(f"{where}.dtype must be float32 or float64, got {dt_name!r}")
    return _DTYPES[dt_name]


def _seed(head: Any, where: str) -> int | None:
    seed = _get(head, "seed", (int, type(None)), where)
    if seed is not None and seed < 0:
        raise _Bad(f"{where}.seed must be an integer >= 0 or null, got {seed}")
    return seed


def _finish_network(net: Sequential, head: Any, members: _Members) -> None:
    """The parts every network file has: the generator, the optimizer and the history."""
    where = "network"
    net.rng = _decode_rng(_get(head, "rng", dict, where))
    net.set_rng(net.rng)  # Dropout draws its masks from the network's generator
    opt_head = _get(head, "optimizer", (dict, type(None)), where)
    if opt_head is not None:
        net.optimizer = _load_optimizer(opt_head, members, net)
    hist_head = _get(head, "history", (dict, type(None)), where)
    if hist_head is not None:
        net.history = _load_history(hist_head, members)


def _load_network_v1(head: Any, members: _Members) -> MLP:
    """Format 1 (zeronn 0.1): an MLP given by its sizes and activations, ``network/W1.npy``..."""
    where = "network"
    sizes = _get(head, "layer_sizes", list, where)
    if len(sizes) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                 for s in sizes):
        raise _Bad(f"network.layer_sizes must list at least two sizes > 0, got {sizes!r}")
    acts = _get(head, "activations", list, where)
    out_act = _get(head, "output_activation", str, where)
    if len(acts) != len(sizes) - 2 or not all(isinstance(a, str) for a in acts):
        raise _Bad(f"network.activations must name one activation per hidden layer "
                   f"({len(sizes) - 2}), got {acts!r}")
    for a in [*acts, out_act]:
        _known_activation(a)
    dtype = _dtype(head, where)
    init = _get(head, "init", str, where)
    seed = _seed(head, where)
    params = []
    for i, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        for name, shape in ((f"W{i}", (fi, fo)), (f"b{i}", (1, fo))):
            member = f"network/{name}.npy"
            params.append(_finite(member, members.read(member, dtype, shape)))
    net = MLP(sizes, acts, out_act, init=params, dtype=dtype, seed=None)
    net.init, net.seed = init, seed
    _finish_network(net, head, members)
    return net


def _known_activation(name: str) -> None:
    try:
        get_activation(name)
    except ValueError:
        raise _Bad(f"the model uses activation {name!r}, which this session does not know: "
                   f"if it is your own, call zeronn.register_activation({name!r}, fn, "
                   f"derivative) before loading; known: {', '.join(sorted(ACTIVATIONS))}"
                   ) from None


def _make_layer(i: int, entry: Any) -> Layer:
    """Layer ``i`` (1-based) from its header entry: a type from ``LAYERS`` and its config,
    checked by the layer's own constructor."""
    where = f"network.layers[{i - 1}]"
    layer = _layer_of(entry, where, f"layer {i}")
    for key, names in (("params", layer.param_names), ("state", layer.state_names)):
        listed = _get(entry, key, list, where)
        if listed != list(names):
            what = "parameters" if key == "params" else "state arrays"
            raise _Bad(f"layer {i} ({layer!r}) has {what} {list(names) or 'none'}, but the "
                       f"file lists {listed or 'none'}")
    return layer


def _load_network_v2(head: Any, members: _Members) -> Sequential:
    """A Sequential or MLP: its layers rebuilt from their types and configs, without
    drawing initial weights, then its parameters and layer states read in."""
    where = "network"
    class_name = _get(head, "class", str, where)
    if class_name not in _MODEL_CLASSES:
        raise _Bad(f"network.class is {class_name!r}; a model file holds "
                   f"{' or '.join(_MODEL_CLASSES)}")
    input_shape = _get(head, "input_shape", list, where)
    if not 1 <= len(input_shape) <= _MAX_NDIM or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape):
        raise _Bad(f"network.input_shape must list 1 to {_MAX_NDIM} sizes > 0, "
                   f"got {input_shape!r}")
    if math.prod(input_shape) > _MAX_INPUT_SIZE:
        raise _Bad(f"network.input_shape {input_shape} has more than {_MAX_INPUT_SIZE} "
                   "values per sample")
    dtype = _dtype(head, where)
    entries = _get(head, "layers", list, where)
    if not 1 <= len(entries) <= _MAX_LAYERS:
        raise _Bad(f"network.layers must list 1 to {_MAX_LAYERS} layers, got {len(entries)}")
    init = _get(head, "init", (str, type(None)), where)
    seed = _seed(head, where)
    # A trial build of each layer gives the shapes its arrays must have; each is checked
    # against the manifest (whose sizes the file backs) before it is read, and all before
    # the network allocates its buffers.
    shape = tuple(input_shape)
    params: list[NDArray] = []
    states: list[dict[str, NDArray]] = []
    for i, entry in enumerate(entries, start=1):
        probe = _make_layer(i, entry)
        try:
            shape = probe.build(shape, dtype)
        except ValueError as exc:
            raise _Bad(f"layer {i} ({probe!r}) does not fit its input: {exc}") from None
        if math.prod(shape) > _MAX_INPUT_SIZE:  # e.g. a huge padding: predict would not fit
            raise _Bad(f"layer {i} ({probe!r}) outputs {list(shape)}, more than "
                       f"{_MAX_INPUT_SIZE} values per sample")
        for name, pshape in zip(probe.param_names, probe.param_shapes()):
            member = f"network/{i}/{name}.npy"
            params.append(_finite(member, members.read(member, dtype, tuple(pshape))))
        state = {}
        for name, target in probe.state.items():
            member = f"network/{i}/{name}.npy"
            state[name] = _finite(member, members.read(member, target.dtype, target.shape))
        states.append(state)
    stray = sorted(m for m in members.unread if m.startswith("network/"))
    if stray:
        raise _Bad(f"the file holds arrays no layer uses: {stray} (is a layer missing from "
                   "network.layers?)")
    layers = [_make_layer(i, entry) for i, entry in enumerate(entries, start=1)]
    net: Sequential
    if class_name == "MLP":
        net = _as_mlp(layers, input_shape, params, dtype)
        net.init = init if init is not None else "explicit"
    else:
        net = Sequential(layers, input_shape=input_shape, dtype=dtype, initialize=False)
        net.set_params(params)
    for layer, state in zip(net.layers, states):
        layer.set_state(state)
    net.seed = seed
    _finish_network(net, head, members)
    return net


def _as_mlp(layers: list[Layer], input_shape: list[int], params: list[NDArray],
            dtype: np.dtype) -> MLP:
    """The MLP of these layers (Dense layers with biases, flat inputs), else ``_Bad``."""
    if len(input_shape) != 1:
        raise _Bad(f"an MLP takes flat inputs, but network.input_shape is {input_shape}")
    for i, layer in enumerate(layers, start=1):
        if not isinstance(layer, Dense) or not layer.use_bias:
            raise _Bad(f"an MLP is made of Dense layers with biases, but layer {i} is "
                       f"{layer!r}: the file's network.class should be 'Sequential'")
    dense = [layer for layer in layers if isinstance(layer, Dense)]
    net = MLP([input_shape[0], *(d.units for d in dense)],
              [d.activation for d in dense[:-1]], dense[-1].activation, init=params,
              dtype=dtype)
    for built, saved in zip(net.layers, dense):
        assert isinstance(built, Dense)
        built.init = saved.init  # MLP gives explicit weights he_normal: keep the saved name
    return net


def _load_optimizer(head: dict[str, Any], members: _Members, net: Network) -> Optimizer:
    where = "network.optimizer"
    name = _get(head, "name", str, where)
    if name not in OPTIMIZERS:
        raise _Bad(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    hp = _get(head, "hyperparameters", dict, where)
    try:
        opt = OPTIMIZERS[name](**hp)
    except (TypeError, ValueError) as exc:
        raise _Bad(f"invalid {name} hyperparameters {hp!r} ({exc})") from None
    t = _int(head, "t", where)
    lr = _get(head, "lr", (int, float), where)
    if not (math.isfinite(lr) and lr > 0):
        raise _Bad(f"{where}.lr must be a positive finite number, got {lr!r}")
    keys = _get(head, "state_keys", list, where)
    state = []
    for i, ks in enumerate(keys):
        if not isinstance(ks, list) or not all(isinstance(k, str) and _NAME.match(k)
                                               for k in ks):
            raise _Bad(f"{where}.state_keys[{i}] must be a list of names")
        state.append({k: _finite(f"optimizer/{i}/{k}.npy",
                                 members.read(f"optimizer/{i}/{k}.npy", net.dtype))
                      for k in ks})
    try:
        _check_optimizer_state(opt, state, net)
    except ValueError as exc:
        raise _Bad(str(exc)) from None
    opt.load_state_dict({"t": t, "lr": lr, "state": state})
    return opt


def _load_history(head: dict[str, Any], members: _Members) -> History:
    where = "network.history"
    hist = History()
    keys = _get(head, "keys", list, where)
    for k in keys:
        if not isinstance(k, str) or not _NAME.match(k):
            raise _Bad(f"{where}.keys holds an invalid name {k!r}")
        arr = members.read(f"history/{k}.npy", _DTYPES["float64"])
        if arr.ndim not in (1, 2):
            raise _Bad(f"history/{k}.npy must be 1-D or 2-D, got shape {arr.shape}")
        hist[k] = arr.tolist()
    hist.stopped_early = _get(head, "stopped_early", bool, where)
    hist.interrupted = _get(head, "interrupted", bool, where)
    best = _get(head, "best_epoch", (int, type(None)), where)
    if best is not None and best < 0:
        raise _Bad(f"{where}.best_epoch must be >= 0, got {best}")
    hist.best_epoch = best
    return hist


def _check_kind(kind: str, version: int) -> None:
    """``kind`` must be this format's network kind, or one registered or declared (no
    module is imported here: the declared names come from installed packages' metadata)."""
    own = NETWORK_KIND if version >= 2 else _V1_NETWORK_KIND
    if kind == own or kind in _KINDS:
        return
    if kind not in (NETWORK_KIND, _V1_NETWORK_KIND) and any(
            ep.name == kind for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)):
        return
    raise _Bad(f"unknown kind {kind!r} for a format {version} file; this zeronn loads "
               f"{', '.join(own if k == NETWORK_KIND else k for k in kinds())}")


def _load_zip(f: IO[bytes], size: int) -> Any:
    if size == 0:
        raise _Bad("the file is empty (0 bytes): it was never written completely; "
                   "save the model again")
    magic = f.read(4)
    f.seek(0)
    if magic != b"PK\x03\x04":
        raise _Bad("this is not a zeronn model file (no zip signature); model files are "
                   "written by zeronn.save")
    try:
        zf = zipfile.ZipFile(f)
    except zipfile.BadZipFile as exc:
        raise _Bad(f"the zip is truncated or corrupt ({exc})") from None
    with zf:
        if HEADER not in zf.NameToInfo:
            raise _Bad(f"the zip has no {HEADER}: not a zeronn model file")
        header = _read_header(zf)
        version = header["format_version"]
        kind = _get(header, "kind", str, "header")
        _check_kind(kind, version)
        is_network = kind in (NETWORK_KIND, _V1_NETWORK_KIND)
        net_head = _get(header, "network", (dict, type(None)), "header")
        if is_network and net_head is None:
            raise _Bad(f"a {kind!r} file without a network")
        members = _Members(zf, _manifest(header), size)
        net: Sequential | None = None
        if net_head is not None:
            net = (_load_network_v1 if version == 1 else _load_network_v2)(net_head, members)
        meta = _get(header, "meta", dict, "header")
        names = _get(header, "extra", list, "header")
        arrays = {}
        for name in names:
            if not isinstance(name, str) or not _NAME.match(name):
                raise _Bad(f"header.extra holds an invalid name {name!r}")
            arrays[name] = members.read(f"extra/{name}.npy")
        if members.unread:
            raise _Bad(f"the header lists arrays nothing uses: {sorted(members.unread)}")
    if is_network:
        assert net is not None
        if meta or arrays:
            raise _Bad(f"a {kind!r} file carries metadata or extra arrays it should not have")
        return net
    # A registered class, or the one an installed package declares for this exact kind.
    return _class_of_kind(kind).from_zeronn_state(net, meta, arrays)


def load(path: str | os.PathLike[str]) -> Any:
    """Reads a file written by :func:`save`: a :class:`Sequential` or :class:`MLP`, an
    estimator or a CLI model (files of zeronn 0.1 included).

    Raises ``OSError`` if the path cannot be opened, ``ValueError`` naming the file and
    the defect for anything that is not a valid, consistent model file, and
    ``ImportError`` if the file's kind needs a package that is not installed. Never
    unpickles, never imports a module named by the file.
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            return _load_zip(f, size)
        except _Bad as exc:
            raise ValueError(f"cannot load {name}: {exc}") from None
        except ImportError:
            raise
        except ValueError as exc:
            raise ValueError(f"cannot load {name}: {exc}") from exc
        except Exception as exc:
            # zipfile and the npy reader raise many types on corrupt bytes (struct.error,
            # EOFError, zlib.error, OSError on a bad seek...): all mean a damaged file.
            raise ValueError(f"cannot load {name}: the file is damaged "
                             f"({type(exc).__name__}: {exc})") from exc

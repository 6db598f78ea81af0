"""Activation functions, each beside its derivative, looked up by name from one table.

Every activation works in place on preallocated buffers (the training loop allocates
once). ``forward(z, out)`` writes ``a = f(z)`` into ``out`` (which may be ``z``);
``backward(delta, z, a, work)`` turns ``delta = dL/da`` into ``dL/dz`` in place.
As in scikit-learn, the derivative is taken from the *output* ``a`` where that is exact
(relu, leaky_relu, sigmoid, tanh, softmax); the others (elu, gelu, softplus) need the
input ``z`` and say so with ``uses_input``, so the layer keeps ``z``.
These are also the forms PyTorch's autograd uses, which keeps the two equal bit for bit
in most places.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from zeronn._registry import Registry

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "get_activation",
    "register_activation",
]

Forward = Callable[[NDArray, NDArray], NDArray]
Backward = Callable[[NDArray, "NDArray | None", NDArray, NDArray], None]


@dataclass(frozen=True)
class Activation:
    """A named activation: ``forward(z, out) -> out`` and ``backward(delta, z, a, work)``.

    ``uses_input``: the derivative needs ``z``, so ``z`` and ``a`` must be separate buffers.
    ``relu_family``: a ReLU-like activation (He initialisation suits it). Those that output
    exactly 0 below their kink (relu) count for the dead-unit diagnostic: a unit is dead
    when it outputs 0 for every sample.
    """

    name: str
    forward: Forward
    backward: Backward
    uses_input: bool = False
    relu_family: bool = False

    def __call__(self, z: NDArray) -> NDArray:
        """Out-of-place convenience: ``f(z)`` as a new array."""
        return self.forward(z, np.empty_like(z))

    def derivative(self, z: NDArray) -> NDArray:
        """Out-of-place convenience: the elementwise ``f'(z)`` (Jacobian-vector for softmax)."""
        a = self(z)
        delta = np.ones_like(z)
        self.backward(delta, z, a, np.empty_like(z))
        return delta

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


# 恒等関数 (identity): the seed's output layer, "活性化関数なし".
def _identity(z: NDArray, out: NDArray) -> NDArray:
    if out is not z:
        np.copyto(out, z)
    return out


def _identity_back(delta: NDArray, z: NDArray | None, a: NDArray, work: NDArray) -> None:
    return None


# ReLU: 0 for z <= 0, z otherwise; its derivative is 1 where the output is > 0, so 0 at the
# kink z = 0, as the seed's relu_deriv (np.where(x > 0, 1, 0)) and PyTorch both define it.
def _relu(z: NDArray, out: NDArray) -> NDArray:
    return np.maximum(z, 0, out=out)


# From this many elements on, ReLU's mask is written as bools into the work buffer's first
# bytes (1 byte an element instead of 4): 23% faster at 1024x1024 float32, no faster at
# 256x256, where making the views costs what the smaller mask saves.
BOOL_MASK_MIN = 1 << 18


def _relu_back(delta: NDArray, z: NDArray | None, a: NDArray, work: NDArray) -> None:
    if delta.size >= BOOL_MASK_MIN and work.flags.c_contiguous:
        mask = work.reshape(-1).view(np.bool_)[:delta.size].reshape(delta.shape)
        np.greater(a, 0, out=mask)
        np.multiply(delta, mask, out=delta)
        return
    np.greater(a, 0, out=work)
    np.multiply(delta, work, out=delta)


LEAKY_SLOPE = 0.01


def _leaky_relu(z: NDArray, out: NDArray) -> NDArray:
    # max(z, slope*z) equals the piecewise definition for 0 < slope < 1.
    if out is z:
        return np.maximum(z, np.multiply(z, LEAKY_SLOPE), out=out)
    np.multiply(z, LEAKY_SLOPE, out=out)
    return np.maximum(z, out, out=out)


def _leaky_relu_back(delta: NDArray, z: NDArray | None, a: NDArray, work: NDArray) -> None:
    # a > 0 exactly where z > 0 (positive slope); at z = 0 the slope applies, as in PyTorch.
    np.greater(a, 0, out=work)
    work *= 1.0 - LEAKY_SLOPE
    work += LEAKY_SLOPE
    np.multiply(delta, work, out=delta)


def _elu(z: NDArray, out: NDArray) -> NDArray:
    # alpha = 1: z for z > 0, exp(z) - 1 otherwise (expm1 keeps small |z| accurate).
    work = np.minimum(z, 0)
    np.expm1(work, out=work)
    np.maximum(z, 0, out=out)
    out += work
    return out


def _elu_back(delta: NDArray, z: NDArray | None, a: NDArray, work: NDArray) -> None:
    # exp(min(z, 0)) is exp(z) below 0 and exactly 1 above: the derivative for alpha = 1,
    # from z rather than a + 1, which would cancel catastrophically for very negative z.
    assert z is not None
    np.minimum(z, 0, out=work)
    np.exp(work, out=work)
    np.multiply(delta, work, out=delta)


GELU_C = math.sqrt(2.0 / math.pi)
GELU_K = 0.044715


# Elements per chunk of the activations that make several passes with temporaries (gelu):
# chunk-sized temporaries are reused from the heap, while whole-array ones are mapped
# fresh by the allocator on every call and paid for in page faults. gelu's backward over
# a GPT block's (768, 512) float32 took 2.2 ms in training with whole-array temporaries,
# 0.93 ms in chunks of 65536 elements (0.96 ms with 32768, 1.5 ms with 8192).
CHUNK = 65536


def _by_chunks(kernel: Callable[..., object], arrays: tuple[NDArray, ...], temps: int) -> None:
    """``kernel(*arrays, *scratch)`` over consecutive chunks of the arrays' elements (all of
    one shape and dtype; they may be the same array), with ``temps`` chunk-sized scratch
    arrays. An elementwise kernel gives the same numbers as on the whole arrays, which it
    gets, with whole-size scratch, when they are not all C-contiguous."""
    first = arrays[0]
    if not all(a.flags.c_contiguous for a in arrays):
        kernel(*arrays, *(np.empty_like(first) for _ in range(temps)))
        return
    n = first.size
    size = min(CHUNK, n)
    if size == 0:
        return
    flat = [a.reshape(-1) for a in arrays]
    scratch = [np.empty(size, first.dtype) for _ in range(temps)]
    for start in range(0, n, size):
        stop = min(start + size, n)
        kernel(*(f[start:stop] for f in flat), *(t[:stop - start] for t in scratch))


def _gelu_kernel(z: NDArray, out: NDArray, inner: NDArray) -> None:
    # tanh approximation: 0.5 z (1 + tanh(c (z + k z^3))), PyTorch's approximate="tanh".
    np.multiply(z, z, out=inner)
    inner *= GELU_K
    inner += 1.0
    inner *= z
    inner *= GELU_C
    np.tanh(inner, out=inner)
    inner += 1.0
    np.multiply(z, inner, out=out)
    out *= 0.5


def _gelu(z: NDArray, out: NDArray) -> NDArray:
    _by_chunks(_gelu_kernel, (z, out), temps=1)
    return out


def _gelu_back_kernel(delta: NDArray, z: NDArray, work: NDArray, z2: NDArray,
                      left: NDArray) -> None:
    # d/dz = 0.5 (1 + t) + 0.5 z (1 - t^2) c (1 + 3k z^2), with t = tanh(c (z + k z^3)).
    np.multiply(z, z, out=z2)
    np.multiply(z2, GELU_K, out=work)
    work += 1.0
    work *= z
    work *= GELU_C
    np.tanh(work, out=work)  # t
    z2 *= 3.0 * GELU_K
    z2 += 1.0
    z2 *= GELU_C  # inner derivative
    np.multiply(work, work, out=left)
    np.subtract(1.0, left, out=left)
    left *= z2
    left *= z
    left *= 0.5  # 0.5 z (1 - t^2) inner'
    work += 1.0
    work *= 0.5  # 0.5 (1 + t)
    work += left
    np.multiply(delta, work, out=delta)


def _gelu_back(delta: NDArray, z: NDArray | None, a: NDArray, work: NDArray) -> None:
    assert z is not None
    _by_chunks(_gelu_back_kernel, (delta, z, work), temps=2)


def _sigmoid(z: NDArray, out: NDArray) -> NDArray:
    # 1 / (1 + exp(-z)), as torch computes it: exp(-z) overflows to inf only where the
    # result is below the smallest normal number (z < -88.7 in float32, -709 in float64),
    # and 1 / inf is then the exact limit 0, so the overflow is expected and silenced.
    # Accurate to 3 ulps everywhere else, on the saturated side too (no 1 - x appears),
    # and one exp: 8x faster than exp(-logaddexp(0, -z)), which kept subnormal results
    # below those bounds but cost 9-32 ulps and a log1p per element.
    # Negation as a product by -1 (the same bits): NumPy 2.4's float32 np.negative reads
    # an (n, 1) view with a 16-byte row stride (an LSTM gate of one unit) as if it were
    # contiguous, and returns other columns' values.
    np.multiply(z, -1, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    np.add(out, 1, out=out)
    return np.divide(1, out, out=out)  # faster than np.reciprocal here (same result)


def _sigmoid_back(delta: NDArray, z: NDArray | None, a: NDArray, work: NDArray) -> None:
    np.subtract(1.0, a, out=work)
    work *= a
    np.multiply(delta, work, out=delta)


def _tanh(z: NDArray, out: NDArray) -> NDArray:
    return np.tanh(z, out=out)


def _tanh_back(delta: NDArray, z: NDArray | None, a: NDArray, work: NDArray) -> None:
    np.multiply(a, a, out=work)
    np.subtract(1.0, work, out=work)
    np.multiply(delta, work, out=delta)


SOFTPLUS_THRESHOLD = 20.0  # above it softplus(z) is z to double precision; PyTorch's default


def _softplus(z: NDArray, out: NDArray) -> NDArray:
    big = z > SOFTPLUS_THRESHOLD
    keep = z[big] if big.any() else None  # copied before `out`, which may be `z`, changes
    np.logaddexp(0, z, out=out)  # log(1 + e^z), stable for large |z|
    if keep is not None:
        out[big] = keep
    return out


def _softplus_back(delta: NDArray, z: NDArray | None, a: NDArray, work: NDArray) -> None:
    assert z is not None
    _sigmoid(z, work)
    big = z > SOFTPLUS_THRESHOLD
    if big.any():
        work[big] = 1.0
    np.multiply(delta, work, out=delta)


def _softmax(z: NDArray, out: NDArray) -> NDArray:
    # Over the last axis (a sequence's steps each get their own distribution). Subtracting
    # the row maximum keeps exp from overflowing; the result is unchanged.
    m = z.max(axis=-1, keepdims=True)
    np.subtract(z, m, out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out


def _softmax_back(delta: NDArray, z: NDArray | None, a: NDArray, work: NDArray) -> None:
    # Jacobian-vector product: dL/dz = a * (dL/da - sum(dL/da * a, axis=-1)).
    np.multiply(delta, a, out=work)
    s = work.sum(axis=-1, keepdims=True)
    delta -= s
    delta *= a


ACTIVATIONS: Registry[Activation] = Registry("activation", {
    a.name: a
    for a in (
        Activation("identity", _identity, _identity_back),
        Activation("relu", _relu, _relu_back, relu_family=True),
        Activation("leaky_relu", _leaky_relu, _leaky_relu_back, relu_family=True),
        Activation("elu", _elu, _elu_back, uses_input=True, relu_family=True),
        Activation("gelu", _gelu, _gelu_back, uses_input=True),
        Activation("sigmoid", _sigmoid, _sigmoid_back),
        Activation("tanh", _tanh, _tanh_back),
        Activation("softplus", _softplus, _softplus_back, uses_input=True),
        Activation("softmax", _softmax, _softmax_back),
    )
}, aliases={  # common spellings: scikit-learn says "logistic", Keras says "linear"
    "linear": "identity", "logistic": "sigmoid", "none": "identity"})
# The built-in identity and ReLU (a user may register others under these names): the hot
# loop skips the identity's no-op calls and relies on ReLU's outputs being >= 0.
IDENTITY = ACTIVATIONS["identity"]
RELU = ACTIVATIONS["relu"]


def get_activation(activation: str | Activation) -> Activation:
    """An :class:`Activation` from its name (or the object itself)."""
    if isinstance(activation, Activation):
        return activation
    return ACTIVATIONS.lookup(activation)


def register_activation(
    name: str,
    fn: Callable[[NDArray], NDArray],
    derivative: Callable[[NDArray], NDArray],
    *,
    relu_family: bool = False,
) -> Activation:
    """Registers a user activation ``fn(z)`` with its elementwise derivative ``derivative(z)``.

    Both take and return arrays of the same shape (n_samples, width). The pair is then
    usable by name everywhere (``MLP(..., activation=name)``, the estimators, the CLI).
    ``check_gradients`` is the way to confirm the derivative matches the function.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"activation name must be a non-empty string, got {name!r}")

    def forward(z: NDArray, out: NDArray) -> NDArray:
        out[...] = fn(z)
        return out

    def backward(delta: NDArray, z: NDArray | None, a: NDArray, work: NDArray) -> None:
        assert z is not None
        work[...] = derivative(z)
        np.multiply(delta, work, out=delta)

    act = Activation(name, forward, backward, uses_input=True, relu_family=relu_family)
    return ACTIVATIONS.register(name, act)

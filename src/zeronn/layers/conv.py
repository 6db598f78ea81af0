"""The convolution layer through im2col / col2im (chapter 7 of the from-scratch books).

Data are NCHW, as PyTorch and the books: a batch ``x`` is (N, C, H, W); the layer has
``FN = filters`` kernels ``W`` (FN, C, KH, KW) and one bias per filter ``b`` (FN,). With
stride ``S`` and zero padding ``P`` on each side the output is (N, FN, OH, OW)::

    OH = (H + 2P - KH) // S + 1        OW = (W + 2P - KW) // S + 1

A convolution is a matrix product once every window is laid out as a row (im2col).

Forward, step by step:

1. ``xp`` (N, C, H + 2P, W + 2P): ``x`` copied inside a zero border (skipped when P = 0).
2. im2col. ``sliding_window_view(xp, (KH, KW), axis=(2, 3))[:, :, ::S, ::S]`` is a *view*
   (N, C, OH, OW, KH, KW) of every window, no copy. One strided copy lays it out as the
   book's matrix

       col (N*OH*OW, C*KH*KW)      row (n, oh, ow): the window under output pixel (oh, ow)
                                   of sample n, its values in (c, kh, kw) order.

   In memory ``col`` is stored transposed, (C*KH*KW, N*OH*OW) (``col`` is a view of it):
   each of the copy's inner loops then runs along an image row instead of a 5-value
   window row, 3-4x faster, and every GEMM below reads it without a transpose.
3. ``col_W = W.reshape(FN, -1).T`` (C*KH*KW, FN): each filter a column, in the same order.
4. ``out = col · col_W + b`` (N*OH*OW, FN): one GEMM computes every output pixel of every
   filter. With ``col`` stored transposed this is computed as its transpose
   ``out.T = W.reshape(FN, -1) · col.T`` (FN, N*OH*OW), the same numbers; reshaped to
   (FN, N, OH, OW) and transposed to (N, FN, OH, OW) (one copy, a fraction of im2col's).
5. The activation, if any, on (N, FN, OH, OW).

Backward, from ``dout`` (N, FN, OH, OW) (after the activation's derivative):

1. ``dout`` transposed back to the GEMM's layout: ``dout.T`` (FN, N*OH*OW).
2. ``dW = col.T · dout`` (C*KH*KW, FN), computed as ``dout.T · col`` (FN, C*KH*KW), the
   same numbers already in ``W``'s layout, so it lands in ``dW`` with no transpose.
3. ``db = sum(dout, axis=0)`` (FN,).
4. ``dcol = dout · col_W.T`` (N*OH*OW, C*KH*KW): the gradient of every window's values,
   computed as ``dcol.T = col_W · dout.T`` into ``col``'s memory (``col`` is spent), with
   its columns in (oh, ow, n) order rather than (n, oh, ow): the batch axis last.
5. col2im: ``dx`` (N, C, H, W) starts at 0, and each of the KH*KW kernel offsets
   (i, j) adds its slice ``dcol[..., i, j]`` (N, C, OH, OW) to the pixels it read,
   ``x[:, :, i - P + S*oh, j - P + S*ow]`` (only those inside the image: the padding
   has no gradient). Overlapping windows (S < K) thus add up, as they must. With the
   batch axis last in ``dcol``, ``dx`` is accumulated in (C, H, W, N) memory, where each
   add runs along whole rows times the batch (7x faster than rows of OW values), and
   copied once into (N, C, H, W).

Work arrays (``xp``, ``col``, the GEMM output, the outputs and ``dx``) are allocated once per
batch size and reused, and every step writes into them with ``out=``.

With the extra ``fast`` (numba; ``ZERONN_NO_FAST=1`` switches it off), the steps around the
GEMMs run as compiled loop nests from ``zeronn._fast.conv`` that give the same numbers:
im2col reads the padding as zeros (no ``xp`` copy, forward 1-2), forward 4 adds the bias
(and ReLU, when it is the activation and ``z`` is not kept) as it lays out ``z``, backward
1 applies ReLU's derivative as it lays out ``dout.T`` (instead of a pass of its own), and
backward 4-5 keeps ``dcol``'s columns in im2col's (n, oh, ow) order and adds it straight
into ``dx`` (N, C, H, W). The GEMMs are the same NumPy calls. This code stays the reference.

The compiled path takes another route for a layer with stride 1 and few inputs per output
value (``C*KH*KW <= DIRECT_MAX_FAN_IN``, such as LeNet's first layer: 1 channel, 5x5):
there ``col`` (C*KH*KW values for each of N*OH*OW output pixels: 5 MB a batch for LeNet)
costs more to write and read back than the few multiplications each of its values feeds.
The *direct* route computes the same sums without it: ``out[n, f, oh, ow] = b[f] + sum over
(c, i, j) of W[f, c, i, j] * xp[n, c, oh + i, ow + j]`` and ``dW[f, c, i, j] = sum over
(n, oh, ow) of dout[n, f, oh, ow] * xp[n, c, oh + i, ow + j]`` straight from the padded
image, and ``dx`` (only when a layer below needs it) through backward 1 and 4-5 as
above. Its sums run in another order than BLAS's, so it equals this im2col code to
rounding (1e-12 relative in float64, 1e-5 in float32; tested), not bit for bit. The
layer's ``col`` (and ``zn.trace``'s) is then computed from the input when asked for.

Initialisation follows torch's fans for a convolution: ``fan_in = C*KH*KW`` and
``fan_out = FN*KH*KW``. An initializer ``(rng, fan_in, fan_out, dtype)`` draws a
(fan_in, fan_out) matrix; its first FN columns are ``col_W`` (C*KH*KW, FN), so ``W`` is
``col_W.T.reshape(FN, C, KH, KW)``: every entry drawn with the scale those fans give.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from zeronn._fast import available as fast_available
from zeronn.activations import IDENTITY, RELU
from zeronn.activations import Activation as ActivationFunction
from zeronn.initializers import Initializer, get_initializer
from zeronn.layers.base import AffineLayer, BufferCache, Param, Shape

__all__ = ["DIRECT_MAX_FAN_IN", "Conv2D", "add_windows", "check_image_input", "col2im",
           "conv_output_size", "fast_kernels", "im2col", "int_pair", "pair_config", "windows"]

_add_reduce = np.add.reduce

# A Conv2D with at most this many inputs per output value (C*KH*KW) and stride 1 takes the
# compiled direct route (when the kernels are in use). Measured on LeNet's first layer
# (C*KH*KW = 25, 6 filters; 1 thread, ms of a training step, forward and backward):
# im2col + GEMMs 2.8 ms, direct 1.1; on a 3-channel 3x3 layer (27, 16 filters) the direct
# route wins too; on LeNet's second (150 inputs, 16 filters) the GEMMs win (direct forward
# 1.24 against 1.39 for im2col + GEMM, but a direct dW 1.6 against the GEMM's 0.7). Below
# ~32 inputs per output the col matrix (K rows of every output pixel) costs more to write
# and read than the few multiplications each of its values feeds.
DIRECT_MAX_FAN_IN = 32


def int_pair(name: str, value: Any, minimum: int) -> tuple[int, int]:
    """``value`` (an int, or a pair (height, width)) as a pair of ints >= ``minimum``."""
    items = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum
            for v in items):
        want = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {want} or a pair (height, width) of them, "
                         f"got {value!r}")
    return int(items[0]), int(items[1])


def pair_config(pair: tuple[int, int]) -> int | list[int]:
    """A pair as JSON: one int when both sides agree, else [height, width]."""
    return pair[0] if pair[0] == pair[1] else list(pair)


def conv_output_size(size: int, kernel: int, stride: int, padding: int, what: str,
                     axis: str) -> int:
    """``(size + 2*padding - kernel) // stride + 1``, or a ValueError if the window
    does not fit in the padded input."""
    padded = size + 2 * padding
    if kernel > padded:
        raise ValueError(f"{what} window {kernel} is larger than the padded input {axis} "
                         f"{padded} ({size} + 2*{padding}): use a smaller kernel/pool size "
                         f"or more padding")
    return (padded - kernel) // stride + 1


def check_image_input(what: str, input_shape: Shape) -> None:
    """An image layer's input must be (C, H, W)."""
    if len(input_shape) != 3:
        raise ValueError(f"{what} takes (n, C, H, W) inputs, but its input has shape "
                         f"(n, {', '.join(map(str, input_shape))}): give the network "
                         f"input_shape=(C, H, W) and put image layers before Flatten()")


def windows(xp: NDArray, kernel: tuple[int, int], stride: tuple[int, int]) -> NDArray:
    """Every (KH, KW) window of ``xp`` (N, C, H, W) as a *view* (N, C, OH, OW, KH, KW), no copy.

    It is ``sliding_window_view(xp, (KH, KW), axis=(2, 3))[:, :, ::S, ::S]``: window
    (oh, ow) starts S*oh rows and S*ow columns in, and within it a step is one row or
    one column, so the strides are (sN, sC, S*sH, S*sW, sH, sW). Built from them directly
    for contiguous arrays (one object instead of the dozens numpy's helper makes on each
    call, which the training loop would pay every step).
    """
    (kh, kw), (sh, sw) = kernel, stride
    n, c, h, w = xp.shape
    if not xp.flags.c_contiguous:
        return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    s_n, s_c, s_h, s_w = xp.strides
    return np.ndarray((n, c, (h - kh) // sh + 1, (w - kw) // sw + 1, kh, kw), xp.dtype,
                      buffer=xp, strides=(s_n, s_c, sh * s_h, sw * s_w, s_h, s_w))


def im2col(xp: NDArray, kernel: tuple[int, int], stride: tuple[int, int],
           out: NDArray | None = None) -> NDArray:
    """Every (KH, KW) window of ``xp`` (N, C, H, W) as a row: col (N*OH*OW, C*KH*KW).

    ``xp`` is already padded. One strided copy from the windows view (N, C, OH, OW, KH, KW)
    into ``out``, the transposed storage (C*KH*KW, N*OH*OW) (allocated if None), laid out
    as (C, KH, KW, N, OH, OW); the result is ``out.T``, a view.
    """
    view = windows(xp, kernel, stride)
    n, c, oh, ow, kh, kw = view.shape
    if out is None:
        out = np.empty((c * kh * kw, n * oh * ow), xp.dtype)
    np.copyto(out.reshape(c, kh, kw, n, oh, ow), view.transpose(1, 4, 5, 0, 2, 3))
    return out.T


def add_windows(d6: NDArray, out: NDArray, stride: tuple[int, int],
                padding: tuple[int, int]) -> NDArray:
    """Adds window values back onto the pixels they came from: the core of col2im.

    d6 (N, C, OH, OW, KH, KW): a value for each window position; out (N, C, H, W), the
    unpadded image, is overwritten with the sums (overlapping windows add up; values that
    came from the padding are dropped). One strided add per kernel offset (i, j).
    """
    h, w = out.shape[2:]
    oh, ow, kh, kw = d6.shape[2:]
    (sh, sw), (ph, pw) = stride, padding
    out.fill(0)
    for i in range(kh):
        r0, r1, rs = _valid_range(i, ph, sh, oh, h)
        if r0 >= r1:
            continue
        for j in range(kw):
            c0, c1, cs = _valid_range(j, pw, sw, ow, w)
            if c0 >= c1:
                continue
            dst = out[:, :, rs:rs + sh * (r1 - r0 - 1) + 1:sh, cs:cs + sw * (c1 - c0 - 1) + 1:sw]
            np.add(dst, d6[:, :, r0:r1, c0:c1, i, j], out=dst)
    return out


def col2im(dcol: NDArray, x_shape: Shape, kernel: tuple[int, int], stride: tuple[int, int],
           padding: tuple[int, int], out: NDArray | None = None) -> NDArray:
    """The adjoint of im2col: dcol (N*OH*OW, C*KH*KW) -> dx (N, C, H, W) (unpadded).

    Each window's values go back to the pixels they came from, overlapping windows adding
    up; values that came from the padding are dropped. ``out`` is overwritten.
    """
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    if out is None:
        out = np.empty(x_shape, dcol.dtype)
    # dcol.T is the contiguous storage (C, KH, KW, N, OH, OW) when dcol came from im2col.
    d6 = dcol.T.reshape(c, kh, kw, n, oh, ow).transpose(3, 0, 4, 5, 1, 2)
    return add_windows(d6, out, stride, padding)


def fast_kernels() -> Any:
    """zeronn._fast.conv's compiled kernels when numba is installed and not switched off
    (``ZERONN_NO_FAST=1``), else None: the NumPy code above (the pooling layers ask too)."""
    if not fast_available():
        return None
    from zeronn._fast.conv import kernels

    return kernels()


def _valid_range(offset: int, pad: int, stride: int, n_out: int, size: int
                 ) -> tuple[int, int, int]:
    """Output positions o in [o0, o1) whose pixel ``o*stride + offset - pad`` lies in
    [0, size), and that first pixel."""
    first = offset - pad
    o0 = max(0, -(first // stride))  # ceil(-first / stride): the first pixel >= 0
    o1 = min(n_out, (size - 1 - first) // stride + 1)  # the last pixel <= size - 1
    return o0, o1, o0 * stride + first


class _Buffers:
    """Per-batch-size work arrays of one Conv2D layer, allocated on first use."""

    __slots__ = ("a", "acc", "col", "dT2", "dx", "dxT", "gemm", "nob", "work", "xp", "xs", "z")

    def __init__(self, layer: Conv2D, n: int) -> None:
        c, h, w = layer.input_shape
        fn, oh, ow = layer.output_shape
        (kh, kw), (ph, pw), dt = layer.kernel_size, layer.padding, layer.dtype
        # The zero border is written once: later batches only overwrite the interior.
        self.xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dt) if ph or pw else None
        # col's storage, col.T (C*KH*KW, N*OH*OW); the direct route makes it only if a
        # gradient flows further back (dcol) or a non-contiguous input takes im2col.
        self.col: NDArray | None = None
        if not layer.direct:
            self.col = np.empty((c * kh * kw, n * oh * ow), dt)
        # The direct route: the padded planes (border and slack written once) and scratch
        # row blocks of OH*WP values; ``nob`` stands for db without a bias.
        self.xs: NDArray | None = None
        self.acc: NDArray | None = None
        self.nob: NDArray | None = None
        if layer.direct:
            self.xs = np.zeros((n, c, (h + 2 * ph) * (w + 2 * pw) + kw - 1), dt)
            self.acc = np.empty(3 * oh * (w + 2 * pw), dt)  # conv_direct_grads' 3 blocks
            self.nob = None if layer.use_bias else np.empty(fn, dt)
        self.gemm = np.empty((fn, n * oh * ow), dt)  # out.T, then dout.T
        self.z = np.empty((n, fn, oh, ow), dt)
        self.a = np.empty((n, fn, oh, ow), dt) if layer.keep_z else self.z
        self.work = np.empty((n, fn, oh, ow), dt)
        # Only when a gradient flows further back (not for a first layer):
        self.dT2: NDArray | None = None  # dout.T with columns (oh, ow, n): (FN, OH*OW*n)
        self.dxT: NDArray | None = None  # dx accumulated as (C, H, W, n)
        self.dx: NDArray | None = None  # (n, C, H, W)


class Conv2D(AffineLayer):
    """A 2-D convolution with an optional activation: x (n, C, H, W) -> (n, filters, OH, OW).

    ``W`` (filters, C, KH, KW) and ``b`` (filters,), one bias per filter; ``dW``, ``db``
    alike; ``params`` in the order W, b. ``kernel_size``, ``stride`` and ``padding`` are an
    int or a pair (height, width); padding adds zeros on each side (torch's ``padding``).
    ``activation``: a name or activation object (``None``: identity). ``init``: an
    initializer name or callable ``(rng, fan_in, fan_out, dtype)``, with torch's conv fans
    (see the module docstring); biases start at 0. ``use_bias=False`` drops ``b``.
    """

    kind = "conv2d"
    W = Param()
    b = Param()
    activation: ActivationFunction
    _W: NDArray
    _b: NDArray
    dW: NDArray
    db: NDArray

    def __init__(self, filters: int, kernel_size: int | tuple[int, int], stride: int |
                 tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 activation: str | ActivationFunction | None = None,
                 init: str | Initializer = "he_normal", use_bias: bool = True) -> None:
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"Conv2D filters must be a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = int_pair("Conv2D kernel_size", kernel_size, 1)
        self.stride = int_pair("Conv2D stride", stride, 1)
        self.padding = int_pair("Conv2D padding", padding, 0)
        self._init_affine(activation, init, use_bias)
        self._cache: BufferCache[_Buffers] | None = None
        self._buf: _Buffers | None = None
        self._x: NDArray | None = None
        self._kernels: Any = None  # zeronn._fast.conv's compiled kernels, when in use
        self.direct = False  # the compiled direct route (set by build)
        self._went_direct = False  # the last forward pass took it

    # -- structure -------------------------------------------------------------------
    @property
    def fan_in(self) -> int:
        """C*KH*KW: the inputs of one output value (a row of ``col``)."""
        return self.input_shape[0] * self.kernel_size[0] * self.kernel_size[1]

    @property
    def fan_out(self) -> int:
        """FN*KH*KW, as torch counts a convolution's fan-out."""
        return self.filters * self.kernel_size[0] * self.kernel_size[1]

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        check_image_input("Conv2D", input_shape)
        super().build(input_shape, dtype)
        _, h, w = self.input_shape
        oh = conv_output_size(h, self.kernel_size[0], self.stride[0], self.padding[0],
                              "Conv2D kernel", "height")
        ow = conv_output_size(w, self.kernel_size[1], self.stride[1], self.padding[1],
                              "Conv2D kernel", "width")
        self.output_shape = (self.filters, oh, ow)
        self.keep_z = self.activation.uses_input or self.keep_logits
        self._cache = BufferCache(self._make_buffers)
        self._kernels = fast_kernels()
        # The direct route (see the module docstring): compiled kernels, stride 1, and few
        # inputs per output value, where im2col's col matrix is large next to the work.
        self.direct = (self._kernels is not None and self.stride == (1, 1)
                       and self.fan_in <= DIRECT_MAX_FAN_IN)
        return self.output_shape

    def _make_buffers(self, n: int) -> _Buffers:
        return _Buffers(self, n)

    def param_shapes(self) -> list[Shape]:
        shapes: list[Shape] = [(self.filters, self.input_shape[0], *self.kernel_size)]
        return [*shapes, (self.filters,)] if self.use_bias else shapes

    def bind(self, flat_params: NDArray, flat_grads: NDArray) -> None:
        super().bind(flat_params, flat_grads)
        # W and dW as (FN, C*KH*KW) matrices: col_W is the first's transpose (views).
        self._W2 = self._W.reshape(self.filters, -1)
        self._dW2 = self.dW.reshape(self.filters, -1)

    def initialize(self, rng: np.random.Generator) -> None:
        m = get_initializer(self.init)(rng, self.fan_in, self.fan_out, self.dtype)
        col_w = np.asarray(m)[:, :self.filters]  # (C*KH*KW, FN)
        self.W = col_w.T.reshape(self._W.shape)
        if self.use_bias:
            self._b.fill(0)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"filters": self.filters,
                               "kernel_size": pair_config(self.kernel_size),
                               "stride": pair_config(self.stride),
                               "padding": pair_config(self.padding),
                               "activation": self.activation.name}
        if isinstance(self.init, str):  # a callable is not JSON (as Dense)
            cfg["init"] = self.init
        if not self.use_bias:
            cfg["use_bias"] = False
        return cfg

    def release(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        self._buf = self._x = None

    # -- computation -----------------------------------------------------------------
    def _col_storage(self, buf: _Buffers) -> NDArray:
        if buf.col is None:
            n = buf.z.shape[0]
            buf.col = np.empty((self.fan_in, n * self.output_shape[1] * self.output_shape[2]),
                               self.dtype)
        return buf.col

    def _im2col(self, x: NDArray, buf: _Buffers) -> NDArray:
        col = self._col_storage(buf)
        k = self._kernels
        if k is not None and x.flags.c_contiguous:  # pads as it copies: no xp
            k.im2col(x, *self.kernel_size, *self.stride, *self.padding, col)
            return col.T
        xp = x
        if buf.xp is not None:
            ph, pw = self.padding
            h, w = self.input_shape[1:]
            xp = buf.xp
            xp[:, :, ph:ph + h, pw:pw + w] = x
        return im2col(xp, self.kernel_size, self.stride, out=col)

    def _linear(self, col: NDArray, n: int, gemm: NDArray, z: NDArray,
                relu: bool = False) -> NDArray:
        """z (n, FN, OH, OW) = (col · col_W + b) reshaped and transposed.

        ``col`` (N*OH*OW, C*KH*KW) is a transposed view: the GEMM computes ``out.T``.
        ``relu``: the compiled kernels apply ReLU as they write z (ignored without them).
        """
        np.dot(self._W2, col.T, out=gemm)
        fn, oh, ow = self.output_shape
        if self._kernels is not None:  # the bias added as it lays out z
            self._kernels.gemm_to_nchw(gemm, self._b if self.use_bias else gemm[:, 0],
                                       self.use_bias, relu, z.reshape(n, fn, oh * ow))
            return z
        if self.use_bias:
            np.add(gemm, self._b[:, None], out=gemm)
        np.copyto(z.reshape(n, fn, oh * ow), gemm.reshape(fn, n, oh * ow).transpose(1, 0, 2))
        return z

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        """x (n, C, H, W) -> (n, FN, OH, OW). Returns a work buffer, valid until the next call."""
        cache = self._cache
        assert cache is not None, "a Conv2D layer computes once built into a network"
        n = x.shape[0]
        buf = cache.get(n) or cache.make(n)
        # With the compiled kernels, ReLU (z not kept) is applied as z is laid out.
        k = self._kernels
        fused = k is not None and self.activation is RELU and buf.a is buf.z
        self._went_direct = (buf.xs is not None and buf.acc is not None
                             and x.flags.c_contiguous)
        if self._went_direct:
            z = buf.z
            k.pad_planes(x, *self.padding, buf.xs)
            k.conv_direct(buf.xs, self._W, self._b if self.use_bias else buf.acc,
                          self.use_bias, fused, self.input_shape[2] + 2 * self.padding[1],
                          buf.acc, z)
        else:
            z = self._linear(self._im2col(x, buf), n, buf.gemm, buf.z, fused)
        if not fused and (z is not buf.a or self.activation is not IDENTITY):
            self.activation.forward(z, buf.a)
        self._x, self._buf = x, buf
        return buf.a

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/da -> dL/dx. With the compiled kernels and ReLU (z not kept), ReLU's backward
        ``dout * (a > 0)`` is folded into the first pass over ``dout`` (which is then not
        overwritten); otherwise as every affine layer."""
        buf = self._buf
        if (buf is not None and self._kernels is not None and self.activation is RELU
                and buf.a is buf.z and dout.flags.c_contiguous):
            return self._backward(dout, need_dx, relu=True)
        return super().backward(dout, need_dx)

    def backward_from_logits(self, delta: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/dz (n, FN, OH, OW) -> dL/dx (n, C, H, W); sets dW = dout.T·col, db = sum(dout)."""
        return self._backward(delta, need_dx, relu=False)

    def _backward(self, delta: NDArray, need_dx: bool, relu: bool) -> NDArray | None:
        """``relu``: ``delta`` is dL/da of a fused ReLU (compiled kernels only): dz is
        ``delta * (a > 0)``, computed as it is read."""
        buf = self._buf
        if buf is None:
            raise ValueError("backward() needs a forward() first")
        if self._went_direct and not delta.flags.c_contiguous:
            delta = np.ascontiguousarray(delta)  # the direct route's kernels read it flat
        n = delta.shape[0]
        fn, oh, ow = self.output_shape
        dT = buf.gemm  # dout.T (FN, N*OH*OW)
        k = self._kernels if delta.flags.c_contiguous else None
        if k is not None and self._went_direct and buf.xs is not None and buf.acc is not None:
            # dW and db straight from the planes the forward pass read, no col matrix
            k.conv_direct_grads(buf.xs, delta, buf.a, relu,
                                self.input_shape[2] + 2 * self.padding[1], buf.acc, self.dW,
                                self.db if buf.nob is None else buf.nob)
            if not need_dx:
                return None
        if k is not None:
            a3 = buf.a.reshape(n, fn, oh * ow)
            if relu:
                k.nchw_to_gemm_relu(delta.reshape(n, fn, oh * ow), a3, dT)
            else:
                k.nchw_to_gemm(delta.reshape(n, fn, oh * ow), dT)
        else:
            np.copyto(dT.reshape(fn, n, oh * ow),
                      delta.reshape(n, fn, oh * ow).transpose(1, 0, 2))
        if not self._went_direct:
            assert buf.col is not None
            np.dot(dT, buf.col.T, out=self._dW2)  # dW = (col.T · dout).T = dout.T · col
            if self.use_bias:
                _add_reduce(dT, axis=1, out=self.db)
        if not need_dx:
            return None
        c, h, w = self.input_shape
        (kh, kw) = self.kernel_size
        if k is not None:
            # dcol.T = col_W · dout.T into col's memory, its columns in (n, oh, ow) order as
            # im2col wrote them; col2im adds it straight into dx.
            if buf.dx is None:
                buf.dx = np.empty((n, c, h, w), self.dtype)
            col = self._col_storage(buf)
            np.dot(self._W2.T, dT, out=col)
            k.col2im(col, kh, kw, *self.stride, *self.padding, buf.dx)
            return buf.dx
        if buf.dx is None or buf.dT2 is None or buf.dxT is None:
            buf.dT2 = np.empty((fn, oh * ow * n), self.dtype)
            buf.dxT = np.empty((c, h, w, n), self.dtype)
            buf.dx = np.empty((n, c, h, w), self.dtype)
        # dcol.T = col_W · dout.T with the batch axis last, into col's memory (col is spent)
        np.copyto(buf.dT2.reshape(fn, oh, ow, n), delta.transpose(1, 2, 3, 0))
        dcolT = np.dot(self._W2.T, buf.dT2, out=self._col_storage(buf))
        d6 = dcolT.reshape(c, kh, kw, oh, ow, n).transpose(5, 0, 3, 4, 1, 2)
        add_windows(d6, buf.dxT.transpose(3, 0, 1, 2), self.stride, self.padding)
        np.copyto(buf.dx, buf.dxT.transpose(3, 0, 1, 2))
        return buf.dx

    @property
    def col(self) -> NDArray:
        """The last forward pass's im2col matrix (N*OH*OW, C*KH*KW) (a view of a work
        buffer: a backward pass that computes dx overwrites it with dcol's values). After a
        forward pass by the direct route, which builds no col, it is computed here from the
        input (a new array, by the NumPy im2col)."""
        if self._buf is None or self._x is None:
            raise ValueError("no forward pass yet")
        if self._went_direct:
            ph, pw = self.padding
            return im2col(np.pad(self._x, ((0, 0), (0, 0), (ph, ph), (pw, pw))),
                          self.kernel_size, self.stride)
        assert self._buf.col is not None
        return self._buf.col.T

    def infer(self, x: NDArray, logits: bool = False) -> NDArray:
        n = x.shape[0]
        ph, pw = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        col = im2col(xp, self.kernel_size, self.stride)
        gemm = np.empty((self.filters, col.shape[0]), self.dtype)
        z = self._linear(col, n, gemm, np.empty((n, *self.output_shape), self.dtype))
        if logits:
            return z
        act = self.activation
        return act.forward(z, np.empty_like(z) if act.uses_input else z)

    def __repr__(self) -> str:
        cfg = self.config()
        if not isinstance(self.init, str):
            cfg["init"] = getattr(self.init, "__name__", "custom")
        defaults = [("stride", 1), ("padding", 0), ("activation", "identity"),
                    ("init", "he_normal")]
        args = [str(cfg.pop("filters")), f"kernel_size={cfg.pop('kernel_size')!r}"]
        args += [f"{k}={v!r}" for k, v in cfg.items() if (k, v) not in defaults]
        return f"Conv2D({', '.join(args)})"

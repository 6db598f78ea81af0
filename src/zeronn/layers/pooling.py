"""Pooling layers (chapter 7 of the from-scratch books): max and average over windows.

Both slide a (PH, PW) window with stride S (default: the pool size, windows side by side)
over each channel of x (N, C, H, W) on its own, giving (N, C, OH, OW) with
``OH = (H + 2P - PH) // S + 1`` (torch's ``ceil_mode=False``). As torch, the padding P may
be at most half the pool size.

``MaxPool2D`` (``torch.nn.functional.max_pool2d``), padding with -inf:

1. The windows view (N, C, OH, OW, PH, PW) of the padded input (no copy); in the book,
   ``col`` (N*C*OH*OW, PH*PW) has a window per row and ``out = max(col, axis=1)``.
2. ``out`` (N, C, OH, OW): the max of each window, over the PH*PW strided slices
   ``window[..., i, j]`` one after the other (faster than rows of 4 values).
3. Backward: ``dcol`` is 0 except ``dout`` at each window's arg-max (``argmax`` of the row,
   the first one on ties, as torch: the first slice equal to the max), and col2im adds the
   windows back onto the image (overlapping windows add up): only the maxima get gradient.
   In the common case of windows side by side (stride = pool size, no padding) no two
   windows share a pixel, so ``dcol`` is written straight into a windows view of ``dx``
   and there is nothing to add up.

``AvgPool2D`` (``avg_pool2d`` with ``count_include_pad=True``, torch's default), padding
with 0: ``out`` is the sum of the PH*PW strided slices of the padded input, divided by
PH*PW (zeros of the padding count); backward adds ``dout / (PH*PW)`` back onto every
pixel of every window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn.layers.base import BufferCache, Layer, Shape
from zeronn.layers.conv import (
    add_windows,
    check_image_input,
    conv_output_size,
    fast_kernels,
    int_pair,
    pair_config,
    windows,
)

__all__ = ["AvgPool2D", "MaxPool2D"]


class _Pool(Layer):
    """What MaxPool2D and AvgPool2D share: sizes, checks, the padded input buffer."""

    pad_value = 0.0

    def __init__(self, pool_size: int | tuple[int, int], stride: int | tuple[int, int] | None,
                 padding: int | tuple[int, int]) -> None:
        name = type(self).__name__
        self.pool_size = int_pair(f"{name} pool_size", pool_size, 1)
        self.stride = self.pool_size if stride is None else int_pair(f"{name} stride",
                                                                     stride, 1)
        self.padding = int_pair(f"{name} padding", padding, 0)
        for p, k in zip(self.padding, self.pool_size):
            if 2 * p > k:
                raise ValueError(f"{name} padding {self.padding} is more than half the pool "
                                 f"size {self.pool_size} (a window could see only padding): "
                                 f"use padding <= pool_size // 2, as torch requires")
        self._cache: BufferCache[Any] | None = None
        self._x: NDArray | None = None
        self._out: NDArray | None = None

    @property
    def size(self) -> int:
        """PH*PW, the values in one window."""
        return self.pool_size[0] * self.pool_size[1]

    @property
    def tiled(self) -> bool:
        """Windows side by side, none overlapping, no padding: stride = pool size, P = 0."""
        return self.stride == self.pool_size and self.padding == (0, 0)

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        name = type(self).__name__
        check_image_input(name, input_shape)
        super().build(input_shape, dtype)
        c, h, w = self.input_shape
        oh = conv_output_size(h, self.pool_size[0], self.stride[0], self.padding[0],
                              f"{name} pool", "height")
        ow = conv_output_size(w, self.pool_size[1], self.stride[1], self.padding[1],
                              f"{name} pool", "width")
        self.output_shape = (c, oh, ow)
        self._cache = BufferCache(self._make_buffers)
        return self.output_shape

    def _make_buffers(self, n: int) -> Any:
        raise NotImplementedError

    def _padded_buffer(self, n: int) -> NDArray | None:
        """(n, C, H + 2P, W + 2P) with its border set once to the padding value."""
        (ph, pw), (c, h, w) = self.padding, self.input_shape
        if not (ph or pw):
            return None
        return np.full((n, c, h + 2 * ph, w + 2 * pw), self.pad_value, self.dtype)

    def _pad(self, x: NDArray, xp: NDArray | None) -> NDArray:
        """x inside the padded buffer (or x itself without padding); ``xp=None`` with
        padding: a new padded array (inference)."""
        (ph, pw), (_, h, w) = self.padding, self.input_shape
        if not (ph or pw):
            return x
        if xp is None:
            xp = np.full((x.shape[0], *x.shape[1:2], h + 2 * ph, w + 2 * pw),
                         self.pad_value, x.dtype)
        xp[:, :, ph:ph + h, pw:pw + w] = x
        return xp

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"pool_size": pair_config(self.pool_size)}
        if self.stride != self.pool_size:
            cfg["stride"] = pair_config(self.stride)
        if self.padding != (0, 0):
            cfg["padding"] = pair_config(self.padding)
        return cfg

    def release(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        self._x = self._out = None

    def __repr__(self) -> str:
        cfg = self.config()
        args = [repr(cfg.pop("pool_size"))] + [f"{k}={v!r}" for k, v in cfg.items()]
        return f"{type(self).__name__}({', '.join(args)})"


class _MaxBuffers:
    __slots__ = ("arg", "dcol", "dx", "hit", "out", "taken", "tmp", "xp")

    def __init__(self, layer: MaxPool2D, n: int) -> None:
        shape = (n, *layer.output_shape)
        self.xp = layer._padded_buffer(n)
        self.out = np.empty(shape, layer.dtype)
        # The compiled tiled kernels: the arg-max of each window (-1 for NaN), and a scratch
        # row block. One byte per window when the positions fit (a quarter of the memory
        # both passes stream; LeNet's first pool backward: 0.25 -> 0.19 ms).
        arg_type = np.int8 if layer.size <= 127 else np.int32
        self.arg = np.empty(shape, arg_type) if layer._kernels is not None else None
        self.tmp = (np.empty(max(4096, layer.output_shape[2] * layer.pool_size[1]),
                             layer.dtype) if layer._kernels is not None else None)
        self.hit = np.empty(shape, np.bool_)
        self.taken = np.empty(shape, np.bool_)
        self.dcol: NDArray | None = None  # (PH, PW, n, C, OH, OW), for backward
        self.dx: NDArray | None = None


class MaxPool2D(_Pool):
    """Max pooling: x (n, C, H, W) -> (n, C, OH, OW), the largest value of each window.

    ``pool_size``, ``stride`` (``None``: the pool size) and ``padding`` (-inf on each side):
    an int or a pair (height, width). The gradient goes to each window's arg-max (the first
    one on ties, as torch); ``arg`` (n, C, OH, OW) is it for the last forward pass, as an
    index into the window flattened row by row (``i * PW + j``).

    The windows are not copied out (the book's im2col form, ``col`` (N*C*OH*OW, PH*PW)
    and a max over its rows, spends its time on rows of 4 values): forward takes the max
    over the PH*PW strided slices ``window[..., i, j]`` (n, C, OH, OW) one after the
    other. Backward finds the arg-max the same way, from the input kept by reference (as
    Dense keeps its x): the first slice equal to the max takes the gradient. Every step is
    a whole-array comparison, with no branch on the data.

    With the extra ``fast`` (numba; ``ZERONN_NO_FAST=1`` switches it off) and side-by-side
    windows (stride = pool size, no padding), compiled loops from ``zeronn._fast.conv`` do
    the same in one pass each way, with the same numbers: forward keeps each window's
    arg-max as it takes the max, and backward writes every value of dx once (the routed
    gradient or 0). This code stays the reference.
    """

    kind = "maxpool2d"
    pad_value = -np.inf

    def __init__(self, pool_size: int | tuple[int, int] = 2,
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__(pool_size, stride, padding)
        self._buf: _MaxBuffers | None = None
        self._view: NDArray | None = None
        self._kernels: Any = None  # zeronn._fast.conv's kernels, for tiled windows
        self._went_fast = False  # the last forward pass took them

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        shape = super().build(input_shape, dtype)
        self._kernels = fast_kernels() if self.tiled else None
        return shape

    def _make_buffers(self, n: int) -> _MaxBuffers:
        return _MaxBuffers(self, n)

    def release(self) -> None:
        super().release()
        self._buf = self._view = None
        self._went_fast = False

    def _max(self, view: NDArray, out: NDArray) -> NDArray:
        np.copyto(out, view[..., 0, 0])
        pw = self.pool_size[1]
        for k in range(1, self.size):
            np.maximum(out, view[..., k // pw, k % pw], out=out)
        return out

    @property
    def arg(self) -> NDArray:
        """Where each window's max is (the first on ties), (n, C, OH, OW), a new array."""
        if self._view is None or self._out is None:
            raise ValueError("no forward pass yet")
        hits = self._view.reshape(*self._out.shape, self.size) == self._out[..., None]
        return np.argmax(hits, axis=-1)

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        cache = self._cache
        assert cache is not None, "a MaxPool2D layer computes once built into a network"
        buf: _MaxBuffers = cache.get(x.shape[0]) or cache.make(x.shape[0])
        self._view = windows(self._pad(x, buf.xp), self.pool_size, self.stride)
        self._went_fast = buf.arg is not None and x.flags.c_contiguous
        if self._went_fast:
            self._kernels.maxpool_tiled(x, *self.pool_size, buf.out, buf.arg)
            self._out = buf.out
        else:
            self._out = self._max(self._view, buf.out)
        self._buf = buf
        return buf.out

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/dout (n, C, OH, OW) -> dL/dx (n, C, H, W): each window's gradient to its max."""
        buf, view = self._buf, self._view
        if buf is None or view is None:
            raise ValueError("backward() needs a forward() first")
        if not need_dx:
            return None
        if buf.dx is None:
            buf.dx = np.empty((dout.shape[0], *self.input_shape), self.dtype)
            if not self.tiled:
                buf.dcol = np.empty((*self.pool_size, *dout.shape), self.dtype)
        if self._went_fast and buf.arg is not None and buf.tmp is not None:
            if not dout.flags.c_contiguous:
                dout = np.ascontiguousarray(dout)
            self._kernels.maxpool_tiled_backward(dout, buf.arg, *self.pool_size, buf.dx,
                                                 buf.tmp)
            return buf.dx
        (_, h, w), (oh, ow) = self.input_shape, dout.shape[2:]
        if buf.dcol is None and (h != oh * self.pool_size[0] or w != ow * self.pool_size[1]):
            # Tiled windows that leave rows or columns uncovered (H not a multiple of PH):
            # those get no gradient, and the layer below may have written into dx.
            buf.dx.fill(0)
        # dst (n, C, OH, OW, PH, PW): the gradient of each window's values. Tiled windows
        # (stride = pool size, no padding) are disjoint, so dst is a view of dx itself and
        # nothing is added up; otherwise dcol, added back by col2im.
        if buf.dcol is None:
            dst = windows(buf.dx, self.pool_size, self.stride)
        else:
            dst = buf.dcol.transpose(2, 3, 4, 5, 0, 1)
        pw, hit, taken = self.pool_size[1], buf.hit, buf.taken
        # dst[..., i, j] = dout where (i, j) is the first position holding the window's max
        np.equal(view[..., 0, 0], buf.out, out=taken)
        np.multiply(dout, taken, out=dst[..., 0, 0])
        for k in range(1, self.size):
            np.equal(view[..., k // pw, k % pw], buf.out, out=hit)
            np.greater(hit, taken, out=hit)  # hit and not taken by an earlier position
            np.multiply(dout, hit, out=dst[..., k // pw, k % pw])
            if k < self.size - 1:
                np.logical_or(taken, hit, out=taken)
        if buf.dcol is None:
            return buf.dx
        return add_windows(dst, buf.dx, self.stride, self.padding)

    def infer(self, x: NDArray) -> NDArray:
        view = windows(self._pad(x, None), self.pool_size, self.stride)
        return self._max(view, np.empty((x.shape[0], *self.output_shape), x.dtype))


class _AvgBuffers:
    __slots__ = ("dx", "out", "xp")

    def __init__(self, layer: AvgPool2D, n: int) -> None:
        self.xp = layer._padded_buffer(n)
        self.out = np.empty((n, *layer.output_shape), layer.dtype)
        self.dx: NDArray | None = None


class AvgPool2D(_Pool):
    """Average pooling: x (n, C, H, W) -> (n, C, OH, OW), the mean of each window.

    ``pool_size``, ``stride`` (``None``: the pool size) and ``padding`` (zeros on each
    side, counted in the mean: torch's ``count_include_pad=True``): an int or a pair.
    """

    kind = "avgpool2d"

    def __init__(self, pool_size: int | tuple[int, int] = 2,
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__(pool_size, stride, padding)
        self._buf: _AvgBuffers | None = None

    def _make_buffers(self, n: int) -> _AvgBuffers:
        return _AvgBuffers(self, n)

    def release(self) -> None:
        super().release()
        self._buf = None

    def _mean(self, xp: NDArray, out: NDArray) -> NDArray:
        view = windows(xp, self.pool_size, self.stride)
        np.copyto(out, view[..., 0, 0])
        for i in range(self.pool_size[0]):
            for j in range(self.pool_size[1]):
                if i or j:
                    np.add(out, view[..., i, j], out=out)
        return np.divide(out, self.size, out=out)

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        cache = self._cache
        assert cache is not None, "an AvgPool2D layer computes once built into a network"
        buf: _AvgBuffers = cache.get(x.shape[0]) or cache.make(x.shape[0])
        self._buf, self._out = buf, self._mean(self._pad(x, buf.xp), buf.out)
        return buf.out

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/dout (n, C, OH, OW) -> dL/dx: ``dout / (PH*PW)`` to every pixel of its window."""
        buf = self._buf
        if buf is None:
            raise ValueError("backward() needs a forward() first")
        if not need_dx:
            return None
        np.divide(dout, self.size, out=dout)
        if buf.dx is None:
            buf.dx = np.empty((dout.shape[0], *self.input_shape), self.dtype)
        d6 = np.broadcast_to(dout[..., None, None], (*dout.shape, *self.pool_size))
        return add_windows(d6, buf.dx, self.stride, self.padding)

    def infer(self, x: NDArray) -> NDArray:
        return self._mean(self._pad(x, None), np.empty((x.shape[0], *self.output_shape),
                                                         x.dtype))

"""Batches delivered where the compute is.

On a GPU the training images stay on the device as uint8 when they fit (a quarter of float32's
size), and each batch is gathered and normalized there: no host round trip per step. When they do
not fit, batches are gathered on the host into pinned buffers and copied on a second stream, one
batch ahead, so the copy of batch k+1 overlaps the compute of batch k. On the CPU there is one path.
The choice ('auto', 'device' or 'host') can be forced and is reported in the run's first event.
Float features (your own data) are always gathered on the host: the device-side gather kernel of the
fused step reads uint8 pixels. The images may be a memory map; a batch then reads just its rows.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from neuraterm.core.data.normalize import Normalizer
from neuraterm.core.errors import NeuratermError

PLACEMENTS = ("auto", "device", "host")


def choose(xp, nbytes: int, placement: str = "auto", dtype=np.uint8) -> str:
    """'device' when the data should live on the GPU, 'host' otherwise (always 'host' on the CPU and for floats)."""
    if placement not in PLACEMENTS:
        raise NeuratermError(f"unknown data placement {placement!r}; expected one of {', '.join(PLACEMENTS)}")
    if xp is np or dtype != np.uint8:
        return "host"
    if placement != "auto":
        return placement
    free, _ = xp.cuda.runtime.memGetInfo()
    return "device" if nbytes < 0.5 * free else "host"


class Feeder:
    def __init__(self, xp, x_uint8: np.ndarray, y: np.ndarray, normalizer: Normalizer, batch_size: int,
                 placement: str = "auto"):
        self.xp, self.normalizer = xp, normalizer
        self.placement = choose(xp, x_uint8.nbytes, placement, x_uint8.dtype)
        self.resident = xp is np or self.placement == "device"  # the images are where the compute is
        features = x_uint8.shape[1]
        self.out = xp.empty((batch_size, features), dtype=xp.float32)
        self.staged = [xp.empty((batch_size, features), dtype=x_uint8.dtype) for _ in range(2)]
        if self.resident:
            self.x = xp.asarray(x_uint8)
            self.y = xp.asarray(y)
        else:
            self.x = x_uint8
            self.y = xp.asarray(y)
            self.copy_stream = xp.cuda.Stream(non_blocking=True)
            self.pinned = []
            for _ in range(2):
                memory = xp.cuda.alloc_pinned_memory(batch_size * features * x_uint8.dtype.itemsize)
                self.pinned.append(np.frombuffer(memory, x_uint8.dtype, batch_size * features).reshape(batch_size, features))
            self.ready = [xp.cuda.Event(), xp.cuda.Event()]  # copy into staged[slot] done
            self.consumed = [xp.cuda.Event(), xp.cuda.Event()]  # normalize out of staged[slot] done

    def describe(self) -> str:
        if self.xp is np:
            return "host memory (CPU)"
        mb = self.x.nbytes / 2**20
        return (f"resident on the GPU as uint8 ({mb:,.0f} MiB)" if self.placement == "device"
                else f"streamed from host memory, pinned, prefetched one batch ahead ({mb:,.0f} MiB)")

    def _normalize(self, staged, n):
        xb = self.out[:n]
        self.normalizer(staged[:n], self.xp, out=xb)
        return xb

    def stream(self, batches: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, object, object]]:
        """Yield `(idx, x_batch_float32, y_batch)` on the compute device for each index array.

        The yielded `x_batch` is a reused buffer: it is valid until the next batch is requested.
        """
        if self.resident:
            for idx in batches:
                n = len(idx)
                dev_idx = self.xp.asarray(idx)
                self.xp.take(self.x, dev_idx, axis=0, out=self.staged[0][:n])
                yield idx, self._normalize(self.staged[0], n), self.y[dev_idx]
            return
        xp = self.xp
        pending = None
        for k, idx in enumerate(batches):
            slot = k % 2
            n = len(idx)
            self.ready[slot].synchronize()  # the copy that last used this pinned buffer has finished
            np.take(self.x, idx, axis=0, out=self.pinned[slot][:n], mode="clip")
            self.copy_stream.wait_event(self.consumed[slot])
            self.staged[slot][:n].set(self.pinned[slot][:n], stream=self.copy_stream)
            self.ready[slot].record(self.copy_stream)
            if pending is not None:
                yield pending
            xp.cuda.get_current_stream().wait_event(self.ready[slot])
            pending = (idx, self._normalize(self.staged[slot], n), self.y[xp.asarray(idx)])
            self.consumed[slot].record(xp.cuda.get_current_stream())
        if pending is not None:
            yield pending

"""One device→host transfer for many device tensors, and host→device copies that do not wait.

A ``.cpu()``, ``.tolist()`` or ``.item()`` of a GPU tensor waits until every kernel queued before it has run,
and so does a plain ``.to(device)`` of a CPU tensor (PyTorch synchronises the stream after a blocking
host-to-device copy). Inside a batch each such wait leaves the GPU idle while the host catches up. The scoring
code therefore queues all of a batch's device work first, registers the tensors the host needs with a
:class:`Fetch`, and moves them in one transfer (all values as float64, which holds float32, int32, bool and
token ids exactly). Small host-made tensors go to the device with :func:`to_device` (``non_blocking``: the
copy is staged and queued, nothing waits).
"""
from __future__ import annotations

import numpy as np
import torch


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """``t`` on ``device`` without waiting for the device's queued work (a no-op when already there)."""
    device = torch.device(device)
    if t.device == device or (device.type == t.device.type and device.index is None):
        return t
    return t.to(device, non_blocking=True)


class Fetch:
    """Device tensors gathered for one transfer: ``add`` returns a handle, ``run`` moves everything at once,
    ``get(handle)`` is then the NumPy array with the tensor's shape and dtype (exact: float64 carries every
    float32, int32, bool and int64 < 2⁵³ value unchanged)."""

    def __init__(self):
        self._items: list[torch.Tensor] = []
        self._out: list[np.ndarray] | None = None
        self._pending = None

    def add(self, t: torch.Tensor) -> int:
        if self._out is not None or self._pending is not None:
            raise RuntimeError("this transfer has already run")
        self._items.append(t.detach())
        return len(self._items) - 1

    def start(self) -> None:
        """Queue the transfer (into pinned host memory on a GPU, recording an event): the host can go on
        queueing other work; :meth:`wait` (or :meth:`run`) completes it."""
        if self._pending is not None or self._out is not None:
            return
        items = self._items
        gpu = [t for t in items if t.device.type == "cuda"]
        if not gpu:
            self._pending = ("cpu", None, None)
            return
        flat = torch.cat([t.reshape(-1).to(device=gpu[0].device, dtype=torch.float64, non_blocking=True)
                          for t in items])
        host = torch.empty(flat.shape, dtype=torch.float64, pin_memory=True)
        host.copy_(flat, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._pending = ("cuda", host, event)

    def wait(self) -> None:
        """Complete the transfer (waits for the device work it depends on)."""
        if self._out is not None:
            return
        if self._pending is None:
            self.start()
        kind, host, event = self._pending
        items = self._items
        if kind == "cpu":
            self._out = [t.numpy() if t.dtype != torch.bfloat16 else t.float().numpy() for t in items]
        else:
            event.synchronize()
            data = host.numpy()
            out, at = [], 0
            for t in items:
                size = t.numel()
                arr = data[at:at + size].reshape(tuple(t.shape))
                at += size
                out.append(arr.astype(_NUMPY.get(t.dtype, np.float64), copy=True))
            self._out = out
        self._items = []
        self._pending = None

    def run(self) -> "Fetch":
        self.start()
        self.wait()
        return self

    def get(self, handle: int) -> np.ndarray:
        if self._out is None:
            raise RuntimeError("the transfer has not run yet")
        return self._out[handle]


_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.int64: np.int64, torch.int32: np.int32,
          torch.bool: np.bool_, torch.float16: np.float32, torch.bfloat16: np.float32}

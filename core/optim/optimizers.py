"""Optimizers as update rules over one flat parameter buffer.

Each optimizer is `update(params, grads)` on flat arrays plus its state as named arrays (so a
checkpoint holds plain `.npy` files). The shared `step()` applies, in PyTorch's order: gradient
clipping by global norm, then the coupled L2 penalty on weights only (`g += l2 * w`), then the rule.
Every scalar is cast to the buffer's dtype: a float64 scalar would silently slow float32 math ~6x.
"""
from __future__ import annotations

import math

import numpy as np

from neuraterm.core.optim import adam_kernel
from neuraterm.core.backend import to_host
from neuraterm.core.errors import NeuratermError
from neuraterm.core.optim.flat import FlatParameters
from neuraterm.core.nn.tensor import Tensor


class Optimizer:
    name = "optimizer"
    state_names: tuple[str, ...] = ()

    def __init__(self, params: list[Tensor], lr: float, l2: float = 0.0, clip_norm: float | None = None):
        if lr < 0 or l2 < 0 or (clip_norm is not None and clip_norm <= 0):
            raise NeuratermError(f"{self.name}: lr and l2 must be >= 0 and clip_norm > 0")
        self.flat = FlatParameters(list(params))
        self.xp = self.flat.xp
        self.t = self.flat.data.dtype.type
        self.lr, self.l2, self.clip_norm = lr, l2, clip_norm
        self.steps = 0
        self.tmp = self.xp.empty_like(self.flat.data)
        for name in self.state_names:
            setattr(self, name, self.xp.zeros_like(self.flat.data))

    def zero_grad(self) -> None:
        self.flat.zero_grad()

    def step(self, grad=None) -> None:
        """One update; `grad` is the flat gradient when the caller wrote it there itself (FusedStep)."""
        xp, t = self.xp, self.t
        p, g = self.flat.data, (self.flat.gathered_grad() if grad is None else grad)
        if self.clip_norm is not None:
            # On the device and without a branch: no host synchronization per step.
            norm = xp.sqrt(xp.dot(g, g))
            g *= xp.minimum(t(self.clip_norm) / (norm + t(1e-6)), t(1))
        if self.l2:
            nd = self.flat.n_decay
            xp.multiply(p[:nd], t(self.l2), out=self.tmp[:nd])
            g[:nd] += self.tmp[:nd]
        self.steps += 1
        self.update(p, g)

    def update(self, p, g) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {name: to_host(getattr(self, name)).copy() for name in self.state_names}
        state["steps"] = np.array(self.steps, dtype=np.int64)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name in self.state_names:
            value = state.get(name)
            target = getattr(self, name)
            if value is None or value.shape != target.shape:
                raise NeuratermError(f"optimizer state {name!r} is missing or does not fit the model")
            target[...] = self.xp.asarray(value, dtype=target.dtype)
        steps = state.get("steps")
        if steps is None or steps.shape != () or steps.dtype.kind not in "iu":
            raise NeuratermError("optimizer state 'steps' is missing or is not a single integer")
        self.steps = int(steps)


class SGD(Optimizer):
    """SGD with optional momentum and Nesterov momentum, in PyTorch's formulation."""
    name = "sgd"

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, **kw):
        self.state_names = ("velocity",) if momentum else ()
        if nesterov and not momentum:
            raise NeuratermError("sgd: nesterov needs momentum > 0")
        super().__init__(params, lr, **kw)
        self.momentum, self.nesterov = momentum, nesterov

    def update(self, p, g):
        t = self.t
        if self.momentum:
            v = self.velocity
            v *= t(self.momentum)
            v += g
            if self.nesterov:
                g += t(self.momentum) * v
            else:
                g = v
        self.xp.multiply(g, t(-self.lr), out=self.tmp)
        p += self.tmp


class Adam(Optimizer):
    """Adam with bias correction; `weight_decay` here is AdamW's decoupled decay (0 for Adam)."""
    name = "adam"
    state_names = ("m", "v")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **kw):
        super().__init__(params, lr, **kw)
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        # One compiled pass instead of twelve NumPy ones where Numba is installed and the model is large
        # enough to repay loading it; both give the same bits.
        self.compiled = (self.xp is np and self.flat.data.dtype == np.float32
                         and self.flat.data.size >= adam_kernel.COMPILED_FROM and adam_kernel.available())

    def update(self, p, g):
        xp, t, tmp = self.xp, self.t, self.tmp
        b1, b2 = self.beta1, self.beta2
        # lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps), with sqrt(bc2) moved out of the division: one pass fewer.
        root_bc2 = math.sqrt(1 - b2 ** self.steps)
        eps_term, step_scale = t(self.eps * root_bc2), t(-self.lr * root_bc2 / (1 - b1 ** self.steps))
        decay = t(1 - self.lr * self.weight_decay)
        if self.compiled:
            adam_kernel.adam_update(p, g, self.m, self.v, self.flat.n_decay, decay, t(b1), t(b2), t(1 - b1),
                                    t(1 - b2), eps_term, step_scale)
            return
        if self.weight_decay:
            p[:self.flat.n_decay] *= decay
        self.m *= t(b1)
        xp.multiply(g, t(1 - b1), out=tmp)
        self.m += tmp
        self.v *= t(b2)
        xp.multiply(g, g, out=tmp)
        tmp *= t(1 - b2)
        self.v += tmp
        xp.sqrt(self.v, out=tmp)
        tmp += eps_term
        xp.divide(self.m, tmp, out=tmp)
        tmp *= step_scale
        p += tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): decay is not scaled by 1/sqrt(v)."""
    name = "adamw"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, **kw):
        super().__init__(params, lr, betas, eps, weight_decay, **kw)


class RMSprop(Optimizer):
    """RMSprop as PyTorch defines it (eps outside the square root, optional momentum)."""
    name = "rmsprop"

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, **kw):
        self.state_names = ("square_avg", "velocity") if momentum else ("square_avg",)
        super().__init__(params, lr, **kw)
        self.alpha, self.eps, self.momentum = alpha, eps, momentum

    def update(self, p, g):
        xp, t, tmp = self.xp, self.t, self.tmp
        self.square_avg *= t(self.alpha)
        xp.multiply(g, g, out=tmp)
        tmp *= t(1 - self.alpha)
        self.square_avg += tmp
        xp.sqrt(self.square_avg, out=tmp)
        tmp += t(self.eps)
        xp.divide(g, tmp, out=tmp)
        if self.momentum:
            self.velocity *= t(self.momentum)
            self.velocity += tmp
            xp.multiply(self.velocity, t(-self.lr), out=tmp)
        else:
            tmp *= t(-self.lr)
        p += tmp


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def build(name: str, params: list[Tensor], **options) -> Optimizer:
    """An optimizer by name, e.g. `build("sgd", model.parameters(), lr=0.1, momentum=0.9)`."""
    if name not in OPTIMIZERS:
        raise NeuratermError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    try:
        return OPTIMIZERS[name](params, **options)
    except TypeError as exc:
        raise NeuratermError(f"{name}: {exc}") from None

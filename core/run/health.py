"""Layer health: what each layer's weights, gradients, updates and activations do while a run trains.

Loss and accuracy say *that* training goes badly; these figures say *why* (cs231n's "babysitting the
learning process", Deeplearning4j's update:parameter chart, TensorBoard's distributions). Per layer:

- weight and gradient norms and the update/weight ratio ||W_after - W_before|| / ||W_before|| of one
  step, sampled every `every` steps, and at the last step of an epoch shorter than that (the gradient
  is the one the optimizer received: after clipping and the coupled L2 term);
- on a fixed probe batch, drawn once from the training split with its own generator (so values compare
  across epochs and runs and no training stream is touched), the activations' mean and standard
  deviation, the fraction of dead units (ReLU family: never positive on the probe) or of saturated
  values (tanh: |a| > 0.99; sigmoid: a < 0.01 or a > 0.99), and percentile bands of weights and
  activations (TensorBoard's distribution bands: min, 7, 16, 31, 50, 69, 84, 93, max);
- how far the units of a layer differ (`unit_spread`: ||W - mean row|| / ||W||; 0 when every unit has
  the same weights, the symmetry a constant initialization never breaks), and batch-norm scale and shift
  ranges; and per class, the mean probability the model gives the true class on the probe batch.

Everything is computed with `xp` on the device and crosses to the host once per epoch, so the GPU runs
the same code; measuring reads the parameters and writes nothing the training step uses, so a run
trains the same bits with health on or off.
"""
from __future__ import annotations

import math
import queue
import threading

import numpy as np

from neuraterm.core.backend import this_stream, to_host
from neuraterm.core.nn.batchnorm import BatchNorm1d
from neuraterm.core.nn.dropout import Dropout
from neuraterm.core.nn.linear import Linear
from neuraterm.core.nn.tensor import Tensor, no_grad

PERCENTILES = (0, 7, 16, 31, 50, 69, 84, 93, 100)
PROBE_SIZE = 512  # rows of the probe batch, at most...
PROBE_SHARE = 32  # ...and at most 1/32 of the training split (but PROBE_MIN): on a small split a 512-row
PROBE_MIN = 64  # probe is a large share of the epoch (quick: 15% of 3,500 rows, 2.5% of its epoch time)
BAND_SAMPLE = 4096
HEALTH_ROWS = 512  # epochs of health a checkpoint holds at most (`kept_epochs`)
PROBE_SEED = 0x5EED  # added to the run's seed: the probe's own generator, never a training stream
SCALARS = ("weight_norm", "grad_norm", "update_ratio", "update_ratio_median", "act_mean", "act_std",
           "dead_fraction", "saturated_fraction", "unit_spread", "bn_scale_min", "bn_scale_max",
           "bn_shift_min", "bn_shift_max")
FIELDS = (*SCALARS, *(f"weight_p{p}" for p in PERCENTILES), *(f"act_p{p}" for p in PERCENTILES))
COL = {name: i for i, name in enumerate(FIELDS)}
WEIGHT_BANDS = slice(COL["weight_p0"], COL["weight_p0"] + len(PERCENTILES))
ACT_BANDS = slice(COL["act_p0"], COL["act_p0"] + len(PERCENTILES))
DEAD_KINDS = ("relu", "leaky_relu", "gelu", "silu")
SATURATING = ("tanh", "sigmoid")


def kept_epochs(epochs: list[int], limit: int | None = None) -> list[int]:
    """The epochs whose health a checkpoint keeps: all of them up to `limit` (HEALTH_ROWS); beyond it the
    latest limit/2, and of the older ones every 2^k-th epoch, k the smallest that leaves at most limit/2.
    Each checkpoint rewrites the health it holds, so an unbounded history made a 3,000-epoch run of a
    small model spend more on health.npz (4 ms a save) than on the rest of measuring. Applied at each
    save to what the last one kept, it leaves a density that falls with age (gaps of 1, 2, 4, 8, ...
    epochs going back), and never brings back an epoch it dropped. The event log keeps every epoch."""
    limit = HEALTH_ROWS if limit is None else limit
    if len(epochs) <= limit:
        return list(epochs)
    recent, older = epochs[-(limit // 2):], epochs[:-(limit // 2)]
    stride = 1
    while sum(1 for e in older if e % stride == 0) > limit - limit // 2:
        stride *= 2
    return [e for e in older if e % stride == 0] + recent


def describe_kept(epochs: list[int]) -> str:
    """'epochs 16..2736 every 16th, 2745..3000': the epochs a checkpoint holds health of, three or more
    of one stride as a range (thinned by `kept_epochs`, or measured every `train.health_every` epochs)."""
    parts, i = [], 0
    while i < len(epochs):
        j, stride = i, (epochs[i + 1] - epochs[i] if i + 1 < len(epochs) else 1)
        while j + 1 < len(epochs) and epochs[j + 1] - epochs[j] == stride:
            j += 1
        if j - i < 2:
            parts.append(str(epochs[i]))
            i += 1
            continue
        nth = "" if stride == 1 else f" every {({2: '2nd', 3: '3rd'}.get(stride, f'{stride}th'))}"
        parts.append(f"{epochs[i]}..{epochs[j]}{nth}")
        i = j + 1
    return ("epoch " if len(epochs) == 1 else "epochs ") + ", ".join(parts)


def probe_size(train_size: int) -> int:
    """512 rows, or 1/32 of a small training split (at least 64, at most the split). A unit that is
    positive on 5% of inputs looks dead on 64 rows with probability 0.95^64 = 4%, on 109 (quick) 0.4%."""
    return min(train_size, PROBE_SIZE, max(PROBE_MIN, train_size // PROBE_SHARE))


def probe_rows(train_size: int, seed: int) -> np.ndarray:
    """Positions in the training split of the probe batch: sorted, without repeats, from its own generator."""
    rng = np.random.default_rng(seed + PROBE_SEED)
    return np.sort(rng.choice(train_size, size=probe_size(train_size), replace=False)).astype(np.int64)


class Layer:
    """One Linear with what follows it up to the next Linear (batch norm, activation, dropout)."""

    def __init__(self, index: int, name: str, modules: list):
        self.index, self.name, self.modules = index, name, modules
        self.linear = modules[0]
        self.bn = next((m for m in modules if isinstance(m, BatchNorm1d)), None)
        kind = self.linear.activation.name
        for m in modules[1:]:
            if hasattr(m, "fn"):
                kind = m.fn.name
        self.kind = kind


def layers_of(model) -> list[Layer]:
    """The model's layers for health: hidden1, hidden2, ..., output."""
    modules = model.layers()
    starts = [i for i, m in enumerate(modules) if isinstance(m, Linear)]
    bounds = zip(starts, [*starts[1:], len(modules)])
    groups = [modules[a:b] for a, b in bounds]
    return [Layer(i, "output" if i == len(groups) - 1 else f"hidden{i + 1}", g) for i, g in enumerate(groups)]


def _signif(v: float, digits: int = 4):
    """A float rounded for the event log; None where there is no finite value (not applicable)."""
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.{digits}g}")


def band_sample(a):
    """The values percentile bands are taken over: every k-th of the flattened array, k chosen so at most
    BAND_SAMPLE remain (sorting 10^5-10^6 values each epoch would cost more than the rest of the
    measuring; 4,096 evenly strided values place each band within about 2% of the distribution, and
    sort in a quarter of the time 16,384 took, which was a tenth of quick's whole measuring)."""
    flat = a.ravel()
    return flat[::-(-flat.size // BAND_SAMPLE)]


def _percentiles(xp, samples: list):
    """`numpy.percentile(sample, PERCENTILES)` (its linear interpolation) of each sample, from one sort of
    them all (padded with +inf to the longest): one sort of 4k values is several times faster than
    percentile's nine partitions, and one call for every band of an epoch saves the calls' overhead,
    which on a small model is most of the cost. Returns (samples, percentiles) float64."""
    sizes = np.array([s.size for s in samples], np.int64)
    padded = xp.full((len(samples), int(sizes.max())), xp.inf, np.result_type(*(s.dtype for s in samples)))
    for i, s in enumerate(samples):
        padded[i, :s.size] = s
    v = xp.sort(padded, axis=1).astype(xp.float64)
    pos = np.array(PERCENTILES, np.float64)[None, :] / 100 * (sizes[:, None] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, sizes[:, None] - 1)
    rows = xp.asarray(np.arange(len(samples))[:, None])
    lo_v, hi_v = v[rows, xp.asarray(lo)], v[rows, xp.asarray(hi)]
    return lo_v + (hi_v - lo_v) * xp.asarray(pos - lo)


def _norm(xp, a):
    """The Frobenius norm, as BLAS's dot of the flattened array with itself (no copy, no cast: about
    5 significant digits in float32, plenty for a health figure)."""
    flat = a.ravel()
    return xp.sqrt(xp.dot(flat, flat))


class HealthMonitor:
    """Samples steps (`before_step`/`after_step`) and measures everything at an epoch's end (`measure`)."""

    def __init__(self, model, xp, probe_x, probe_y, num_classes: int, every: int):
        self.model, self.xp, self.every = model, xp, every
        self.layers = layers_of(model)
        self.probe_x, self.probe_y = probe_x, xp.asarray(probe_y)
        self.num_classes = num_classes
        self.class_counts = xp.bincount(self.probe_y, minlength=num_classes).astype(xp.float64)
        self.samples: list = []  # per sampled step: (layers, 3) [grad norm, ||delta W||, ||W before||]
        # Made once and reused: a fresh 400 KB array per sample is a fresh mapping whose page faults cost
        # more than the copy. Measuring is bound by memory, not arithmetic (a cold pass over quick's first
        # layer costs ~0.1 ms), so each value is taken while its array is still in cache.
        self._before = [xp.empty_like(layer.linear.weight.data) for layer in self.layers]
        self._before_norms: list = []

    def due(self, step: int, steps: int) -> bool:
        """Every `every`-th step of an epoch, and its last step if none was (an epoch shorter than `every`)."""
        return step % self.every == 0 or (step == steps and not self.samples)

    def before_step(self) -> None:
        self._before_norms = []
        for layer, before in zip(self.layers, self._before):
            self.xp.copyto(before, layer.linear.weight.data)
            self._before_norms.append(_norm(self.xp, before))

    def after_step(self) -> None:
        xp, rows = self.xp, []
        for layer, delta, before_norm in zip(self.layers, self._before, self._before_norms):
            w = layer.linear.weight
            grad = getattr(w, "_grad_buffer", None)
            grad = grad if grad is not None else w.grad
            xp.subtract(w.data, delta, out=delta)  # the copy from before the step becomes the step's update
            rows.append(xp.stack([_norm(xp, grad) if grad is not None else xp.asarray(np.nan),
                                  _norm(xp, delta), before_norm]))
        self.samples.append(xp.stack(rows))

    def measure(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(values (layers, FIELDS), class confidence (classes,), samples this epoch); clears the samples."""
        xp = self.xp
        values = xp.full((len(self.layers), len(FIELDS)), xp.nan, xp.float64)
        n_samples = len(self.samples)
        if self.samples:
            s = xp.stack(self.samples)  # (samples, layers, 3)
            ratio = s[:, :, 1] / xp.maximum(s[:, :, 2], 1e-30)
            values[:, COL["grad_norm"]] = s[-1, :, 0]
            values[:, COL["update_ratio"]] = ratio[-1]
            values[:, COL["update_ratio_median"]] = ratio[0] if n_samples == 1 else xp.median(ratio, axis=0)
        self.samples = []
        bands = []  # (layer, columns, values) of every percentile band, computed together at the end
        for layer, scratch in zip(self.layers, self._before):  # in the parameters' own dtype (float32)
            w = layer.linear.weight.data
            row = values[layer.index]
            norm = _norm(xp, w)
            row[COL["weight_norm"]] = norm
            bands.append((layer.index, WEIGHT_BANDS, band_sample(w)))
            if w.shape[0] > 1:
                row[COL["unit_spread"]] = _norm(xp, xp.subtract(w, w.mean(axis=0), out=scratch)) / xp.maximum(norm, 1e-30)
            if layer.bn is not None:
                g, b = layer.bn.weight.data, layer.bn.bias.data
                row[COL["bn_scale_min"]], row[COL["bn_scale_max"]] = g.min(), g.max()
                row[COL["bn_shift_min"]], row[COL["bn_shift_max"]] = b.min(), b.max()
        confidence = self._probe(values, bands)
        for (index, columns, _), pct in zip(bands, _percentiles(xp, [sample for _, _, sample in bands])):
            values[index, columns] = pct
        return to_host(values), to_host(confidence), n_samples

    def _probe(self, values, bands: list):
        """Forward the probe batch in evaluation mode (no dropout, batch norm's running statistics)."""
        xp, was_training = self.xp, self.model.training
        self.model.eval()
        try:
            with no_grad():
                h = Tensor(self.probe_x)
                for layer in self.layers:
                    for m in layer.modules:
                        if not isinstance(m, Dropout):  # the identity in evaluation mode
                            h = m(h)
                    a = h.data
                    row = values[layer.index]
                    mean = a.mean(dtype=xp.float64)
                    deviation = a - mean.astype(a.dtype)  # then one BLAS dot: numpy's std is ~8 passes
                    row[COL["act_mean"]], row[COL["act_std"]] = mean, _norm(xp, deviation) / math.sqrt(a.size)
                    bands.append((layer.index, ACT_BANDS, band_sample(a)))
                    if layer.kind in DEAD_KINDS:
                        row[COL["dead_fraction"]] = 1.0 - (a > 0).any(axis=0).mean()
                    elif layer.kind == "tanh":
                        row[COL["saturated_fraction"]] = (xp.abs(a) > 0.99).mean()
                    elif layer.kind == "sigmoid":
                        row[COL["saturated_fraction"]] = ((a > 0.99) | (a < 0.01)).mean()
                logits = h.data.astype(xp.float64)
        finally:
            self.model.train(was_training)
        shifted = logits - logits.max(axis=1, keepdims=True)
        p = xp.exp(shifted)
        p /= p.sum(axis=1, keepdims=True)
        true = p[xp.arange(len(self.probe_y)), self.probe_y]
        sums = xp.bincount(self.probe_y, weights=true, minlength=self.num_classes)
        return xp.where(self.class_counts > 0, sums / xp.maximum(self.class_counts, 1), xp.nan)


class Measuring:
    """Each epoch's `measure`, its event (`record`) and what the run keeps of it (`keep`: the history and
    health.npz's bytes) on a second thread: started as the epoch ends (`start`) and taken (`result`) by
    that epoch's checkpoint when it comes to health.npz, its last file but the manifest. The event log's
    and the checkpoint's fsyncs before that leave the CPU idle for milliseconds (~15 ms for quick's
    checkpoint on the development VM, against ~2 ms of this work), so the epoch seldom waits for its
    health; where fsyncs cost nothing (tmpfs) it waits about as long as measuring in line would take.
    The thread is made once per run and waits between epochs: a thread started at each epoch end would
    hold the interpreter lock until it finished (`Thread.start` waits for the new thread to run).
    Measuring only reads the parameters, and nothing trains until the measurement is taken."""

    def __init__(self, monitor: HealthMonitor, probe_size: int, keep):
        self.monitor, self.probe_size, self.keep = monitor, probe_size, keep
        self._stream = this_stream(monitor.xp)  # the training's: made before this, and current in this thread
        self._epochs: queue.SimpleQueue = queue.SimpleQueue()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="neuraterm-health", daemon=True)
        self._thread.start()
        self.pending = False

    def start(self, epoch: int) -> None:
        self.pending = True
        self._epochs.put(epoch)

    def result(self) -> tuple:
        """(HealthMeasured event, what `keep` returned) of the epoch last started, once it is measured."""
        self.pending = False
        outcome = self._results.get()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        self._epochs.put(None)

    def _serve(self) -> None:
        with self._stream:
            self._measure_each()

    def _measure_each(self) -> None:
        while (epoch := self._epochs.get()) is not None:
            try:
                values, confidence, samples = self.monitor.measure()
                layers = self.monitor.layers
                event = record(epoch, layers, [layer.kind for layer in layers], values, confidence,
                               self.probe_size, samples, self.monitor.every)
                self._results.put((event, self.keep(values, confidence, event)))
            except BaseException as exc:  # raised again in the thread that takes the result
                self._results.put(exc)


def record(epoch: int, layers: list[Layer] | list[str], kinds: list[str], values: np.ndarray,
           confidence: np.ndarray, probe_size: int, samples: int, every: int):
    """The `HealthMeasured` event of one epoch's values (columnar: each field a list over layers)."""
    from neuraterm.core.run.events import HealthMeasured
    names = [layer.name if isinstance(layer, Layer) else layer for layer in layers]
    rows = [[_signif(v) for v in row] for row in np.asarray(values, np.float64).tolist()]  # floats, not numpy scalars
    fields = {name: [row[COL[name]] for row in rows] for name in SCALARS}
    wb = [row[WEIGHT_BANDS] for row in rows]
    ab = [row[ACT_BANDS] for row in rows]
    return HealthMeasured(epoch=epoch, layers=names, kinds=list(kinds), weight_bands=wb, act_bands=ab,
                          class_confidence=[_signif(v) for v in np.asarray(confidence, np.float64).tolist()],
                          probe_size=probe_size, samples=samples, every=every, **fields)


def history_of(saved: dict | None) -> list:
    """A checkpoint's health (`Snapshot.health`) as one `HealthMeasured` per epoch, oldest first."""
    if saved is None:
        return []
    layout = saved["layout"]
    return [record(int(e), layout["layers"], layout["kinds"], v, conf, len(saved["probe"]), 0,
                   int(layout.get("every", 0)))
            for e, v, conf in zip(saved["epochs"], saved["values"], saved["confidence"])]


def layer_rows(h) -> list[dict]:
    """One epoch's health as a row per layer (what `neuraterm inspect --json` prints)."""
    return [{"layer": name, "kind": h.kinds[i], **{f: getattr(h, f)[i] for f in SCALARS},
             "weight_bands": h.weight_bands[i], "act_bands": h.act_bands[i]} for i, name in enumerate(h.layers)]

"""Automatic health warnings for GAN training: the failures the lecture names, detected.

:class:`HealthMonitor` is a Trainer callback for any two-part GAN task (``task.health_spec()``
names its parts and loss). It reads each step's record and says, as one line with the step
(a notice on stderr, the record's ``health`` text in ``history.jsonl`` and TensorBoard):

* **D winning** — over the last ``window`` steps D's loss averages below ``d_loss_floor``
  (losses bounded below by 0) or D(G(z)) below ``p_fake_floor`` (sigmoid losses): G cannot
  fool D and its gradients vanish;
* **oscillation** — D's loss swings slowly and widely: after removing the window's linear
  trend, a 5-step moving average keeps most of the variance (a slow swing, not step noise),
  its std exceeds ``oscillation_amplitude`` x the mean level, and it crosses zero at least
  4 times (two periods);
* **vanishing G gradients** — the median gradient norm of G over the window falls below
  ``grad_drop`` x the largest such median seen, or its per-parameter RMS below 1e-8 (Adam's
  epsilon: updates stop);
* **mode collapse** — every ``every`` steps a fixed batch of samples (fixed latents, via
  ``task.health_samples``) is embedded in a feature space (EfficientNet-Lite0's pooled
  ImageNet features, shipped on PyPI), and its mean pairwise distance is compared with that of
  a fixed batch of real training images: below ``diversity_ratio`` of it, G's output hardly
  depends on z. With labelled data, a logistic-regression probe fitted on real images'
  features classifies the samples; a class histogram whose entropy is below
  ``class_entropy_ratio`` of the real one's says the samples cover few classes.

Each kind of warning is said at most once per ``repeat`` steps (a condition that comes and
goes would repeat it at every swing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from pixseq.gans.losses import BOUNDED_LOSSES, SIGMOID_LOSSES
from pixseq.runtime import notice
from pixseq.train.state import preserved_rng


@dataclass
class HealthConfig:
    """Windows and thresholds of :class:`HealthMonitor` (``every=0``: no sample checks)."""

    window: int = 50
    every: int = 200
    d_loss_floor: float = 0.05
    p_fake_floor: float = 0.03
    oscillation_amplitude: float = 0.2
    grad_drop: float = 1e-3
    diversity_ratio: float = 0.1
    class_entropy_ratio: float = 0.5
    #: the class histogram is judged from this step on: before, samples are blobs that any
    #: classifier puts into one or two classes, collapse or not
    class_start: int = 1000
    samples: int = 64
    repeat: int = 1000
    features: str = "effnet"  # or "pixels" (16x16 grey pixels: no network, for quick checks)


class FeatureSpace:
    """Images in [0, 1] -> feature vectors (EfficientNet-Lite0 pooled features at 64 px, or pixels)."""

    def __init__(self, kind: str = "effnet", device: torch.device | str = "cpu") -> None:
        self.kind, self.device, self.net = kind, torch.device(device), None
        if kind == "effnet":
            from pixseq.metrics.backbones import LITE0, load_classifier

            self.net = load_classifier(LITE0).net.to(self.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().to(self.device)
        if self.net is None:
            return torch.nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), 16).flatten(1)
        x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
        return self.net.extract_features((x - 0.5) / 0.5).mean((2, 3)).float()  # (B, 1280)


def diversity(features: torch.Tensor) -> float:
    """Mean Euclidean distance over all pairs of rows."""
    d = torch.cdist(features.double(), features.double())
    n = features.size(0)
    return float(d.sum() / max(1, n * (n - 1)))


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def oscillates(values: list[float], amplitude: float) -> bool:
    """Whether a window of loss values swings slowly and widely (see the module docstring)."""
    y = np.asarray(values, dtype=np.float64)
    if len(y) < 20:
        return False
    t = np.arange(len(y))
    y = y - np.polyval(np.polyfit(t, y, 1), t)  # detrended
    smooth = np.convolve(y, np.ones(5) / 5, mode="valid")
    raw_var, smooth_var = float(y.var()), float(smooth.var())
    if raw_var == 0:
        return False
    # sign changes with hysteresis: only excursions beyond half a std count (noise near zero does not)
    band = 0.5 * math.sqrt(smooth_var)
    signs = np.sign(smooth[np.abs(smooth) > band])
    crossings = int(np.sum(signs[1:] != signs[:-1]))
    level = float(np.mean(np.abs(values))) + 1e-3
    return smooth_var / raw_var > 0.6 and math.sqrt(smooth_var) > amplitude * level and crossings >= 4


_SAMPLE_KINDS = {"mode_collapse", "class_collapse"}


@dataclass
class _State:
    last_warned: dict[str, int] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)


class HealthMonitor:
    """Trainer callback; ``warnings`` lists ``(step, kind, message)`` in order."""

    def __init__(self, config: HealthConfig | None = None, features: FeatureSpace | None = None,
                 announce=notice) -> None:
        self.config = config or HealthConfig()
        self.features, self.announce = features, announce
        self.warnings: list[tuple[int, str, str]] = []
        self._state, self._series = _State(), {"d": [], "p": [], "g": []}
        self._peak_grad = 0.0
        self._real: dict | None = None

    # ---------------------------------------------------------------- Trainer hook
    def on_record(self, trainer, step: int, record: dict) -> None:
        spec = trainer.task.health_spec() if hasattr(trainer.task, "health_spec") else None
        if spec is None or not trainer.dist.is_main:
            return
        c, found = self.config, {}
        d_part, g_part, loss = spec["d_part"], spec["g_part"], spec["loss"]
        self._push("d", record.get(f"{d_part}/d_loss"))
        self._push("p", record.get(f"{d_part}/p_fake"))
        self._push("g", record.get(f"grad_norm/{g_part}"))
        if len(self._series["d"]) >= c.window:
            d = self._series["d"][-c.window:]
            p = self._series["p"][-c.window:] if len(self._series["p"]) >= c.window else []
            if loss in BOUNDED_LOSSES and np.mean(d) < c.d_loss_floor:
                found["d_winning"] = f"D is winning: its loss averaged {np.mean(d):.3g} over the last {c.window} steps"
            elif loss in SIGMOID_LOSSES and p and np.mean(p) < c.p_fake_floor:
                found["d_winning"] = (f"D is winning: D(G(z)) averaged {np.mean(p):.3g} over the last {c.window} "
                                      f"steps")
            if oscillates(self._series["d"][-2 * c.window:], c.oscillation_amplitude):
                found["oscillation"] = (f"the losses oscillate: D's loss swings around {np.mean(d):.3g} over the "
                                        f"last {2 * c.window} steps")
        if len(self._series["g"]) >= c.window:
            found.update(self._vanishing(trainer, g_part))
        checked = bool(c.every and hasattr(trainer.task, "health_samples") and step % c.every == 0)
        if checked:
            found.update(self._collapse(trainer, record))
        found.update(self.extra_checks(trainer, step, record))
        self._report(step, record, found, checked)

    def extra_checks(self, trainer, step: int, record: dict) -> dict[str, str]:
        """More checks of a task family (``{kind: message}``), for a subclass to add."""
        return {}

    # ---------------------------------------------------------------- checks
    def _push(self, key: str, value) -> None:
        if value is not None and math.isfinite(float(value)):
            self._series[key].append(float(value))
            del self._series[key][:-4 * self.config.window]  # bounded memory

    def _vanishing(self, trainer, g_part: str) -> dict[str, str]:
        c = self.config
        median = float(np.median(self._series["g"][-c.window:]))
        self._peak_grad = max(self._peak_grad, median)
        n = sum(p.numel() for p in trainer.params[g_part])
        rms = median / math.sqrt(max(n, 1))
        if rms < 1e-8 or median < c.grad_drop * self._peak_grad:
            return {"vanishing": f"G's gradients vanish: median norm {median:.3g} over the last {c.window} steps "
                                 f"(peak {self._peak_grad:.3g}, {rms:.2g} per parameter)"}
        return {}

    def _collapse(self, trainer, record: dict) -> dict[str, str]:
        c = self.config
        if self.features is None:
            self.features = FeatureSpace(c.features, trainer.device)
        if self._real is None:  # a dataset may crop at random: training's RNG must not see it
            with preserved_rng():
                self._real = self._real_reference(trainer.dataset)
        with trainer.saved_weights():
            fake = self.features(trainer.task.health_samples(c.samples, seed=0))
        found, ratio = {}, diversity(fake) / max(self._real["diversity"], 1e-12)
        record["health/diversity_ratio"] = ratio
        if ratio < c.diversity_ratio:
            found["mode_collapse"] = (f"mode collapse: a fixed batch of samples is {ratio:.0%} as diverse as real "
                                      f"images ({self.features.kind} features)")
        probe = self._real.get("probe")
        if probe is not None and trainer.step >= c.class_start:
            counts = np.bincount(probe.predict(fake.cpu().numpy()), minlength=len(self._real["counts"]))
            h = _entropy(counts) / max(_entropy(self._real["counts"]), 1e-12)
            record["health/class_entropy_ratio"] = h
            if h < c.class_entropy_ratio:
                found["class_collapse"] = (f"mode collapse: the samples fall into {int((counts > 0).sum())} of "
                                           f"{len(counts)} classes (class-histogram entropy {h:.0%} of the real data's)")
        return found

    def _real_reference(self, dataset) -> dict:
        """Features of a fixed spread of training images and, with labels, a class probe."""
        from sklearn.linear_model import LogisticRegression

        n = len(dataset)
        idx = np.linspace(0, n - 1, min(n, 512)).astype(int)
        items = [dataset[int(i)] for i in idx]
        feats = torch.cat([self.features(torch.stack([it["image"] for it in items[i:i + 64]]))
                           for i in range(0, len(items), 64)])
        out = {"diversity": diversity(feats[: self.config.samples])}
        labels = np.array([int(it.get("label", -1)) for it in items])
        if (labels >= 0).all() and len(np.unique(labels)) > 1:
            out["probe"] = LogisticRegression(max_iter=500).fit(feats.cpu().numpy(), labels)
            out["counts"] = np.bincount(labels)
        return out

    def _report(self, step: int, record: dict, found: dict[str, str], checked_samples: bool) -> None:
        st, lines = self._state, []
        for kind, message in found.items():
            last = st.last_warned.get(kind)
            if last is None or step - last >= self.config.repeat:
                lines.append(f"step {step}: {message}")
                self.warnings.append((step, kind, message))
                st.last_warned[kind] = step
        # a sample check runs every `every` steps: its verdict stands until the next one
        kept = st.active & _SAMPLE_KINDS if not checked_samples else set()
        st.active = set(found) | kept
        if lines:
            record["health"] = "; ".join(lines)
            if self.announce is not None:
                for line in lines:
                    self.announce(f"health warning: {line}")

"""``pixseq demo``: every pixseq system on one HTML page, in about five minutes on a CPU.

One small model is trained live, so the page shows training too: an iGPT on Fashion-MNIST
(the palette is fitted, the GPT prior trained with the one Trainer), with its loss curve
against a no-context baseline, completions of held-out images, class-conditional and
unconditional samples and a linear probe of every layer (Chen et al. 2020, "Generative
Pretraining from Pixels"). The other sections show the models that ship in the zoo
(:mod:`pixseq.zoo`), trained here for longer: the iGPT at 28x28, the VQGAN + prior with
sliding-window samples, the GANs with FID, the ViT classifier, text to image, upscaling,
translation, and the codec against JPEG / WebP / AVIF with the assessment table. The run
summary gives the time each part took.

One model serves both conditional and unconditional sampling: during training a share of
the images gets an extra "any class" token instead of its label (label dropout, as in
classifier-free guidance, Ho & Salimans 2022), so that token asks for any garment.

Other systems add their own part of the page through :data:`SECTIONS`: callables
``(page, out_dir, device, quick) -> None`` run after the iGPT part (the page is saved
after each, so a failure never loses the parts before it; a section that fails on a
:class:`~pixseq.errors.PixseqError`, e.g. a zoo model whose provider package is missing,
becomes a note on the page and the demo goes on). A
``demo_section`` function in each :data:`SECTION_PROVIDERS` module (one per system, in this
package: :mod:`pixseq.demo.taming` ...) is picked up automatically.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pixseq.errors import PixseqError
from pixseq.plugins import import_optional
from pixseq.probe import NULL_CLASS_NAME
from pixseq.runtime import plural

#: Extra page sections: ``fn(page, out_dir, device, quick) -> None``, run in order.
SECTIONS: list[Callable] = []
#: Modules whose ``demo_section`` joins the page when they are installed.
SECTION_PROVIDERS = ("pixseq.demo.zoo_igpt", "pixseq.demo.taming", "pixseq.demo.gan", "pixseq.demo.classify",
                     "pixseq.demo.text_to_image", "pixseq.demo.upscale", "pixseq.demo.translate", "pixseq.demo.codec")


@dataclass
class DemoSettings:
    """Sizes of the demo run. ``time_budget_s`` caps training (the cosine schedule is then cut short)."""

    image_size: int = 16
    palette: int = 16
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    steps: int = 300
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 40
    null_fraction: float = 0.15
    train_limit: int | None = None
    probe_limit: int = 800
    held_out: int = 500  # test images whose loss is measured at each of ``eval_points`` checkpoints
    eval_points: int = 6
    time_budget_s: float = 100.0
    completion_images: int = 8
    completions: int = 4
    samples_per_class: int = 6
    unconditional: int = 24
    temperature: float = 0.9


FULL = DemoSettings()
QUICK = DemoSettings(image_size=10, palette=8, n_layer=2, n_embd=32, n_head=2, steps=25, batch_size=16,
                     lr=3e-3, warmup_steps=5, train_limit=1024, probe_limit=120, held_out=64, time_budget_s=20.0,
                     completion_images=3, completions=2, samples_per_class=2, unconditional=6)


def _now() -> tuple[float, float]:
    """(wall, CPU) seconds: CPU time tells what a run costs even on a busy shared machine."""
    return time.perf_counter(), time.process_time()


def _since(mark: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _now()
    return wall - mark[0], cpu - mark[1]


class _TimeBudget:
    """Trainer callback: end training cleanly (checkpoint + model) once the budget is spent."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds
        self.stopped_at: int | None = None

    def on_step_end(self, trainer, step: int, record: dict) -> None:
        if time.perf_counter() > self.deadline and step < trainer.config.steps:
            self.stopped_at = step
            trainer.config.steps = step  # the loop condition: no more steps


@dataclass
class _Run:
    """What the training phase hands to the page sections."""

    model: torch.nn.Module
    history: list[dict]
    settings: DemoSettings
    class_names: list[str]
    null_class: int
    baseline_bits: float
    planned_steps: int
    stopped_at: int | None
    timings: dict[str, tuple[float, float]]
    device: torch.device
    seed: int


def _bits(nats: float) -> float:
    return nats / math.log(2.0)


def _unigram_bits(tokens: torch.Tensor, vocab: int) -> float:
    """Entropy of the token histogram: the bits/pixel of a model that ignores all context."""
    p = torch.bincount(tokens.flatten(), minlength=vocab).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log2()).sum())


def train_demo_model(out_dir: Path, device: torch.device, s: DemoSettings, seed: int) -> _Run:
    """Fit the palette and train the class-conditional (+ "any class") iGPT; save it to out_dir/model."""
    from pixseq.data import load_data, resize_square
    from pixseq.models.igpt_train import build_igpt, fit_igpt
    from pixseq.train import TrainConfig

    timings: dict[str, tuple[float, float]] = {}
    t = _now()
    data = load_data("fashion-mnist:train", limit=s.train_limit)
    images = resize_square(data.images, s.image_size)
    names = list(data.class_names) + [NULL_CLASS_NAME]
    null = len(names) - 1
    labels = data.labels.copy()
    labels[np.random.default_rng(seed).random(len(labels)) < s.null_fraction] = null  # label dropout
    model = build_igpt(images, "s", s.palette, len(names), seed, n_layer=s.n_layer, n_embd=s.n_embd,
                       n_head=s.n_head)
    test = load_data("fashion-mnist:test", limit=s.held_out)
    timings["data + palette"] = _since(t)
    # a checkpoint, and with it a held-out loss, every steps/eval_points steps
    cfg = TrainConfig(steps=s.steps, batch_size=s.batch_size, lr=s.lr, warmup_steps=s.warmup_steps,
                      ckpt_every=max(1, s.steps // s.eval_points), log_every=0, seed=seed)
    budget = _TimeBudget(s.time_budget_s)
    t = _now()
    model, history = fit_igpt(model, images, labels, out_dir / "model", cfg, device,
                              meta={"class_names": names, "data": "fashion-mnist:train", "demo": True},
                              callbacks=[budget], held_out=(test.images, test.labels))
    timings["training"] = _since(t)
    with torch.no_grad():
        baseline = _unigram_bits(model.encode_uint8(images[:5000]), s.palette)
    return _Run(model.to(device).eval(), history, s, names, null, baseline, s.steps, budget.stopped_at,
                timings, device, seed)


# ---------------------------------------------------------------- page sections
def _intro(page, run: _Run) -> None:
    s, m = run.settings, run.model
    g = m.prior.config
    steps = len(run.history)
    tok_s = np.median([r.get("tokens_per_s", float("nan")) for r in run.history[1:]] or [float("nan")])
    page.text(
        "iGPT treats an image as a sentence: every pixel becomes one 'word' (the index of its nearest colour "
        "in a small palette found by k-means), and a GPT-2 style transformer learns to predict the next pixel "
        "from all the pixels above and to the left of it. This page was produced by `pixseq demo` on this "
        "machine, from scratch, in under two minutes of CPU time: a deliberately tiny model, so expect blurry but "
        "recognisable garments rather than photographs. The sections after it use the models that ship with "
        "pixseq (its zoo: `pixseq models`), trained here with the same recipes for longer.")
    stopped = (f" (stopped by the {s.time_budget_s:.0f} s training budget; {run.planned_steps} were planned)"
               if run.stopped_at else "")
    rows = [
        ("data", f"Fashion-MNIST train ({m.num_classes - 1} classes), 28x28 resized to {s.image_size}x{s.image_size}"),
        ("palette", f"{s.palette} colours (k-means), i.e. {s.palette}-word vocabulary"),
        ("sequence", f"{s.image_size ** 2} pixels + 1 class token"),
        ("model", f"GPT: {g.n_layer} layers, width {g.n_embd}, {g.n_head} heads, "
                  f"{m.prior.num_params() / 1e6:.2f} M parameters"),
        ("training", f"{steps} steps{stopped} of {s.batch_size} images, AdamW lr {s.lr:g}, warm-up + cosine"),
        ("speed", f"{tok_s:,.0f} tokens/s on " + (torch.cuda.get_device_name(run.device) if run.device.type == "cuda"
                                                  else f"cpu ({plural(torch.get_num_threads(), 'thread')})")),
        ("label dropout", f"{s.null_fraction:.0%} of images train with the '{NULL_CLASS_NAME}' token"),
    ]
    page.table(["setting", "value"], rows)


def _loss_section(page, run: _Run) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    page.section("Training loss")
    steps = np.array([r["step"] + 1 for r in run.history])
    bits = np.array([_bits(r["loss"]) for r in run.history])
    k = max(1, len(bits) // 30)
    smooth = np.convolve(bits, np.ones(k) / k, mode="valid")
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(steps, bits, color="#9ab", lw=0.8, label="per step")
    if k > 1:
        ax.plot(steps[k - 1:], smooth, color="#135", lw=2, label=f"mean of {k} steps")
    held = [(r["step"] + 1, r["eval/bits_per_pixel"]) for r in run.history if "eval/bits_per_pixel" in r]
    if held:
        ax.plot(*zip(*held), "o-", color="#e80", lw=1.5, label="held-out test images")
    ax.axhline(run.baseline_bits, color="#c33", ls="--", label="no context (colour histogram)")
    ax.set_xlabel("step"), ax.set_ylabel("bits per pixel"), ax.grid(alpha=0.3), ax.legend()
    page.plot(fig, caption="Negative log-likelihood of the next pixel, in bits (lower is better).")
    verdict = ("so it has learned how pixels depend on their neighbours and on the garment's shape"
               if smooth[-1] < run.baseline_bits - 0.1 else
               "no better than the histogram yet: this run was too short to learn much (raise --steps/--budget)")
    page.text(
        f"The red line is what a model that ignores every other pixel would pay: the entropy of the colour "
        f"histogram, {run.baseline_bits:.2f} bits/pixel. The transformer ends at {smooth[-1]:.2f} bits/pixel, "
        f"{verdict}. (iGPT reports bits per sub-pixel on 3-channel colour; this is per whole pixel.)")
    if held:
        gap = held[-1][1] - smooth[-1]
        fit = ("about the same as on its training batches, so it generalises rather than memorises"
               if abs(gap) < 0.1 else
               f"{gap:.2f} bits more than on its training batches: it has begun to memorise them" if gap > 0 else
               f"{-gap:.2f} bits less than the training batches' running mean, which lags behind the weights")
        page.text(f"The orange points are the same loss on {run.settings.held_out} test images the model never "
                  f"trained on, measured at each checkpoint with its class label: {held[-1][1]:.2f} bits/pixel at "
                  f"the end, {fit}.")


def _tiles(images: torch.Tensor) -> list[np.ndarray]:
    from pixseq.report.grid import to_uint8_batch

    return to_uint8_batch(images.cpu())


def _completion_section(page, run: _Run) -> None:
    from pixseq.data import load_data, resize_square
    from pixseq.io import to_tensor
    from pixseq.models.generate import MASK_COLOUR
    from pixseq.report.grid import legible_scale

    s, m = run.settings, run.model
    page.section("Completions of held-out images")
    test = load_data("fashion-mnist:test", limit=200)
    # one test image per class, in class order, so the rows show different garments
    picks = [int(np.flatnonzero(test.labels == c)[0]) for c in range(min(s.completion_images, m.num_classes - 1))]
    images = resize_square([test.images[i] for i in picks], s.image_size)
    keep = s.image_size // 2
    x = torch.stack([to_tensor(im) for im in images])  # (B, 3, H, W)
    gen = torch.Generator(run.device).manual_seed(run.seed)
    out = m.complete(x, keep, num=s.completions, labels=torch.full((len(x),), run.null_class), generator=gen,
                     temperature=s.temperature)
    tiles = []
    for i, im in enumerate(images):
        kept = im.copy()
        kept[keep:] = MASK_COLOUR
        tiles += [im, kept] + _tiles(out[i * s.completions:(i + 1) * s.completions])
    page.grid(tiles, ncol=s.completions + 2, scale=legible_scale(s.image_size, 64),
              caption="Each row: a test image the model never saw | its top half (blue: hidden) | "
                      f"{s.completions} completions sampled by the model.")
    page.text(
        "The model gets only the top half of each image (and the 'any class' token, so no label) and draws "
        "the bottom half pixel by pixel. Good completions continue the outline plausibly - a shoe stays a "
        "shoe, trousers grow two legs - and differ from each other, because the model samples rather than "
        "copies. Run `pixseq complete IMAGE --model <out>/model` to try your own images.")


def _samples_section(page, run: _Run) -> None:
    from pixseq.report.grid import legible_scale

    s, m = run.settings, run.model
    page.section("Class-conditional samples")
    k = m.num_classes - 1
    labels = torch.arange(k).repeat_interleave(s.samples_per_class)  # row c = class c
    gen = torch.Generator(run.device).manual_seed(run.seed + 1)
    out = m.generate(len(labels), labels, generator=gen, temperature=s.temperature)
    page.grid(_tiles(out), ncol=s.samples_per_class, scale=legible_scale(s.image_size, 56),
              caption="Row by row: " + ", ".join(run.class_names[:k]) + ".")
    page.text(f"Each row was generated from scratch given only its class token, at temperature "
              f"{s.temperature:g} and without top-k or top-p: close to honest samples of what the model believes "
              f"(temperature 1 would be exact; a slightly lower one trims the speckle of rare colours). The "
              f"speckle and the blur are the price of a sub-million-parameter model trained for minutes.")
    page.section("Unconditional samples")
    gen = torch.Generator(run.device).manual_seed(run.seed + 2)
    out = m.generate(s.unconditional, torch.full((s.unconditional,), run.null_class), generator=gen,
                     temperature=s.temperature)
    page.grid(_tiles(out), ncol=min(12, s.unconditional), scale=legible_scale(s.image_size, 56),
              caption=f"Samples with the '{NULL_CLASS_NAME}' token: the model picks the garment itself.")


def _probe_section(page, run: _Run) -> None:
    from pixseq.data import load_data, resize_square
    from pixseq.probe import best_layer, chance_accuracy, linear_probe

    s = run.settings
    page.section("Linear probe: what the layers know about classes")
    test = load_data("fashion-mnist:test", limit=s.probe_limit)
    images = resize_square(test.images, s.image_size)
    rows = linear_probe(run.model, images, test.labels, 0.25, run.seed, cond_class=run.null_class)
    best = best_layer(rows)
    pixels_note = ("the model's features beat them." if best.test_accuracy > rows[0].test_accuracy else
                   "Fashion-MNIST pixels are already a strong feature, and a model this small and this briefly "
                   "trained need not beat them; larger models trained longer do (iGPT, section 4).")
    page.table(["features", "dimensions", "train accuracy", "held-out accuracy"],
               [(r.layer + (" (best)" if r is best else ""), r.dim, r.train_accuracy, r.test_accuracy)
                for r in rows])
    page.text(
        f"A logistic-regression classifier was fitted on the average of each layer's features over all "
        f"pixels for {len(images) * 3 // 4} test-set images and scored on the other {len(images) - len(images) * 3 // 4} "
        f"(chance, always guessing the commonest class: {chance_accuracy(test.labels):.0%}). The model never saw a label here: it got the "
        f"'any class' token. iGPT found the best features in the middle of the network, because the last "
        f"layers specialise in predicting the next pixel; here the best is {best.layer} "
        f"({best.test_accuracy:.0%}). The first row probes raw pixels for comparison "
        f"({rows[0].test_accuracy:.0%}): {pixels_note}")


def _run_summary(page, run: _Run, timings: dict[str, tuple[float, float]], out_dir: Path) -> None:
    page.section("Run summary")
    page.table(["phase", "wall seconds", "CPU seconds"],
               [(k, round(w, 1), round(c, 1)) for k, (w, c) in timings.items()])
    page.note(f"{plural(torch.get_num_threads(), 'torch thread')} on {plural(os.cpu_count() or 1, 'core')}. "
              f"CPU seconds count every "
              f"thread; on a busy shared machine wall time grows while CPU time stays about the same.")
    page.text(f"The trained model is in {out_dir / 'model'}. Try: "
              f"`pixseq sample --model {out_dir / 'model'} -n 22 --out samples.png`, "
              f"`pixseq complete IMAGE --model {out_dir / 'model'} --out completions.png`, "
              f"`pixseq probe --model {out_dir / 'model'} --data fashion-mnist:test`.")
    page.text("The zoo's models work the same way in every verb and in the web UI (`pixseq ui`): "
              "`pixseq models` lists them with their cards; e.g. `pixseq sample --model zoo:igpt-fm28 --class "
              "Sneaker -n 8 --out sneakers.png`, `pixseq compress PHOTO --model zoo:taming-photo --out photo.pxs`, "
              "`pixseq upscale PHOTO --model zoo:realesrgan-x4plus --out big.png`.")


def extra_sections() -> list[Callable]:
    """:data:`SECTIONS` plus the ``demo_section`` of every installed :data:`SECTION_PROVIDERS` module."""
    found = list(SECTIONS)
    for name in SECTION_PROVIDERS:
        mod = import_optional(name)
        if mod is None:
            continue
        fn = getattr(mod, "demo_section", None)
        if fn is not None and fn not in found:
            found.append(fn)
    return found


def section_name(fn: Callable) -> str:
    """The run summary's name of a section: its module's last part (``pixseq.demo.gan`` -> ``gan``)."""
    module = getattr(fn, "__module__", "") or "extra"
    return module.rsplit(".", 1)[-1].replace("_", " ") + ("" if fn.__name__ == "demo_section" else f" {fn.__name__}")


def pick_threads() -> int:
    """Torch threads for the demo: the idle cores (cores minus the 1-minute load average), at least 1.

    The demo's matmuls are small; a second thread that has to wait for a busy core makes a
    step several times slower (``benchmarks/cli_demo_threads.py``). ``OMP_NUM_THREADS``, when
    set, wins.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(torch.get_num_threads(), int(cores - load + 0.5)))


def run_demo(out_dir: str | os.PathLike, device: torch.device, quick: bool = False, seed: int = 0,
             settings: DemoSettings | None = None, log: Callable[[str], None] = print) -> Path:
    """Run the whole demo; returns the path of ``out_dir/index.html``."""
    out_dir = Path(out_dir)
    s = dataclasses.replace(settings or (QUICK if quick else FULL))
    threads = torch.get_num_threads()
    torch.set_num_threads(pick_threads())
    try:
        return _run_demo(out_dir, device, quick, seed, s, log)
    finally:
        torch.set_num_threads(threads)


def _run_demo(out_dir: Path, device: torch.device, quick: bool, seed: int, s: DemoSettings,
              log: Callable[[str], None]) -> Path:
    from pixseq.report import Page

    start = _now()
    log(f"demo: {torch.get_num_threads()} torch thread(s); training a {s.n_layer}-layer iGPT on Fashion-MNIST {s.image_size}x{s.image_size} "
        f"(at most {s.steps} steps / {s.time_budget_s:.0f} s) ...")
    run = train_demo_model(out_dir, device, s, seed)
    timings = dict(run.timings)
    page = Page("pixseq demo: every system, one small iGPT trained live and the zoo's models")
    _intro(page, run)
    _loss_section(page, run)
    for name, fn in (("completions", _completion_section), ("samples", _samples_section),
                     ("linear probe", _probe_section)):
        log(f"demo: {name} ...")
        t = _now()
        fn(page, run)
        timings[name] = _since(t)
    page.save(out_dir)  # the iGPT part is on disk before other systems' sections run
    for fn in extra_sections():
        part = section_name(fn)
        log(f"demo: {part} ...")
        t = _now()
        try:
            fn(page, out_dir, device, quick)
        except PixseqError as exc:  # e.g. a provided zoo model whose package is missing
            page.section(part)
            page.note(f"This part could not run here: {exc}")
            log(f"demo: {part} skipped: {exc}")
        timings[part] = _since(t)
        page.save(out_dir)
    timings["total"] = _since(start)
    _run_summary(page, run, timings, out_dir)
    path = page.save(out_dir)
    log(f"demo: wrote {path} in {timings['total'][0]:.0f} s ({timings['total'][1]:.0f} CPU s)")
    return path


def check_demo_data() -> None:
    """Fail early, before any training, when Fashion-MNIST is missing."""
    from pixseq.data import fashion_mnist_dir

    try:
        fashion_mnist_dir()
    except PixseqError as exc:
        raise PixseqError(f"the demo trains on Fashion-MNIST: {exc}") from None

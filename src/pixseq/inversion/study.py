"""``pixseq study IMAGES --out DIR``: the founding study's experiment, with honest bits.

Every image goes through

* GAN inversion of ``generator`` (:func:`pixseq.inversion.optimize.invert`, once per image),
  its latent quantised at each of ``bits`` (QSGD or uniform) and written as a real ``.pxs``
  file (:func:`pixseq.inversion.codec.encode_latent`), decoded back from those bytes;
* beside it, what the study's own Elias-coded QSGD returned (level 0 read as level 1, see
  :func:`pixseq.inversion.quantize.study_elias`), with the bits its code would have spent
  counted (it wrote no file: the row says so);
* JPEG at the study's qualities (100 ... 1), WebP and AVIF at the same, and pixseq's token
  codecs (``model``) at their downscale factors -- the runs of ``pixseq bench codecs``
  (:func:`pixseq.codec.compare.codec_runs`, :func:`~pixseq.codec.compare.run_comparison`).

Every output is scored by ``pixseq assess``'s pair metrics (:func:`pixseq.assess.pair_scores`:
ViT-Score or the named fallback, SSIM, MSE, PSNR, MS-SSIM where the images are large enough,
LPIPS where its backbone is present, BRISQUE of the decoded image), and each (method, setting)
over the whole set by FID / KID / IS when the set holds at least ``set_min`` images (else
``n/a`` with the reason). ``preset="thesis"`` scores SSIM and PSNR with the study's settings.
:mod:`pixseq.report.study` lays the means out like the study's Table 3.3 (a row per method and
setting, a column per metric) plus the bits per pixel it never had, and writes the plots,
galleries, JSON, CSV and HTML.

The report is built in a temporary folder beside ``out`` and renamed into place at the end:
stopped at any point, ``out`` holds a whole report or none.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pixseq.errors import PixseqError, first_line
from pixseq.io import _umask
from pixseq.report import study as report

#: The study's JPEG qualities, 100 down to 1 (its table's rows; WebP and AVIF use the same).
STUDY_QUALITIES = (100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 1)
#: The study's QSGD bit depths.
STUDY_BITS = (1, 2, 4, 6, 8)
#: Fewest images a set needs for FID / KID / IS (fewer: n/a). Even at this size FID is biased
#: upwards (2048 features from a handful of images): compare rows with each other only.
SET_MIN_IMAGES = 10
#: The pair metrics scored, by :func:`pixseq.assess.pair_scores` column key.
PAIR_COLUMNS = ("vit_score", "ssim", "mse", "psnr", "ms_ssim", "lpips", "brisque_dist")
SET_COLUMNS = ("fid", "kid", "is")
#: The file that marks a folder as a study's report (``--force`` replaces only such a folder).
MARKER = "study.json"
INVERT, ELIAS = "invert", "invert-elias"


@dataclass
class StudyOptions:
    """The settings of ``pixseq study`` (its options, by the same names)."""

    images: str
    out: Path
    generator: str
    model: list[str] = field(default_factory=list)
    bits: list[int] | None = None  # None: STUDY_BITS
    quantizer: str = "qsgd"
    qualities: list[int] | None = None  # None: STUDY_QUALITIES
    scales: list[int] | None = None  # None: compare.DEFAULT_SCALES
    recipe: str = "pixseq"
    steps: int | None = None
    restarts: int | None = None
    lr: float | None = None
    preset: str = "standard"
    backbone: str | None = None
    limit: int | None = None
    set_min: int = SET_MIN_IMAGES
    batch: int = 16
    no_elias: bool = False
    weights_dir: Path | None = None
    offline: bool | None = None
    force: bool = False


@dataclass
class Inverted:
    """One image's inversion: its latent, class (-1: none) and what it cost."""

    z: torch.Tensor
    label: int
    seconds: float  # its share of the batch's inversion time
    psnr_float: float  # G(z) against the input at the generator's size, before quantisation
    history: list[dict]


# --------------------------------------------------------------------------- checks

def check_options(opts: StudyOptions) -> None:
    """Everything about the options that can be wrong, before any image is read or coded."""
    from pixseq.codec.bench import check_codec_settings
    from pixseq.inversion.optimize import recipe
    from pixseq.inversion.quantize import check_bits
    from pixseq.weights import check_weights_dir

    for b in opts.bits or ():
        check_bits(b, opts.quantizer)
    if opts.bits is not None and not opts.bits:
        raise PixseqError("--bits is empty")
    check_codec_settings(opts.qualities, opts.scales, opts.batch, opts.limit)
    recipe(opts.recipe, steps=opts.steps, restarts=opts.restarts, lr=opts.lr)
    if opts.preset not in ("standard", "thesis"):
        raise PixseqError(f"--preset must be standard or thesis, got {opts.preset!r}")
    if opts.set_min < 2:
        raise PixseqError(f"--set-min must be at least 2 (FID needs two images), got {opts.set_min}")
    if opts.backbone is not None and not opts.backbone.strip():
        raise PixseqError("--backbone is empty")
    check_weights_dir(opts.weights_dir)
    claim_report_folder(opts.out, opts.force, [opts.images, opts.generator, *opts.model])


def claim_report_folder(out: Path, force: bool, inputs: list) -> Path:
    """``--out``: a new folder (its parent exists), an empty one, or -- with ``force`` -- the
    report of an earlier study (it holds :data:`MARKER`); never an input or inside one."""
    from pixseq.io import claim_output, real_path, refuse_existing

    out = claim_output(out, "--out", folder=True, inputs=inputs)
    where = real_path(out)
    for item in inputs:
        if item is not None and Path(item).is_dir() and real_path(item) in where.parents:
            raise PixseqError(f"--out {out} is inside the input folder {item}: its images would be read as "
                              f"inputs next time")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise PixseqError(f"--out {out} holds files that are not a study's report; give a new or empty folder")
        refuse_existing(out, "--out", force, "an earlier study's report")
    return out


# --------------------------------------------------------------------------- scoring

class Scorer:
    """``(original uint8, decoded uint8) -> {column: value}`` with ``pixseq assess``'s pair
    metrics (:func:`pixseq.assess.prepare_scoring`), one metric failing on one pair noted, not fatal."""

    def __init__(self, opts: StudyOptions, device: torch.device, min_side: int, log: Callable[[str], None]) -> None:
        from pixseq.assess import AssessOptions, prepare_scoring
        from pixseq.codec.compare import MS_SSIM_MIN_SIDE

        self.device, self.log, self.notes = device, log, []
        metrics = [c.removesuffix("_dist") for c in PAIR_COLUMNS]
        if min_side < MS_SSIM_MIN_SIDE:
            metrics.remove("ms_ssim")
            self.notes.append(f"MS-SSIM n/a: its 5 scales need images of at least {MS_SSIM_MIN_SIDE} px, the "
                              f"smallest here has {min_side}")
        aopts = AssessOptions(ref=Path("."), dist=Path("."), backbone=opts.backbone, preset=opts.preset,
                              weights_dir=opts.weights_dir, offline=opts.offline)
        self.opts, self.models, columns = prepare_scoring(metrics, False, aopts, device)
        self.notes += self.models.notes
        self.columns = {c: v for c, v in columns.items() if c != "brisque_ref"}  # the original's: once per image
        self.columns["brisque_dist"] = "BRISQUE (decoded image; lower = more natural)"
        self._failed: set[str] = set()

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        from pixseq.io import to_tensor

        return to_tensor(np.ascontiguousarray(image))[None].to(self.device)

    def score(self, a: torch.Tensor, b: torch.Tensor, columns) -> dict[str, float]:
        from pixseq.assess import pair_scores

        out = {}
        for c in columns:
            try:
                out[c] = pair_scores(a, b, {c: ""}, self.models, self.opts)[c]
            except PixseqError as exc:  # e.g. the thesis SSIM of a constant image: that pair's cell is n/a
                if c not in self._failed:
                    self._failed.add(c)
                    self.notes.append(f"{c} n/a for some images: {first_line(exc)}")
        return out

    def __call__(self, ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
        return self.score(self._tensor(ref), self._tensor(out), self.columns)

    def reference_brisque(self, image: np.ndarray) -> float | None:
        t = self._tensor(image)
        return self.score(t, t, ["brisque_ref"]).get("brisque_ref")


# --------------------------------------------------------------------------- inversion runs

def invert_images(gen, images: list[tuple[str, np.ndarray]], config, log: Callable[[str], None]) -> dict[str, Inverted]:
    """Invert ``gen`` on every image once (images of one size as one batch); by image name."""
    from pixseq.inversion.optimize import invert
    from pixseq.io import to_tensor

    groups: dict[tuple, list[tuple[str, np.ndarray]]] = {}
    for name, img in images:
        groups.setdefault(img.shape, []).append((name, img))
    out = {}
    for shape, members in groups.items():
        x = to_tensor(np.stack([img for _, img in members]))
        res = invert(gen, x, config=config, desc=f"inverting {len(members)} images of {shape[1]}x{shape[0]}")
        per = res.seconds / len(members)
        for i, (name, _) in enumerate(members):
            label = int(res.labels[i]) if res.labels is not None else -1
            out[name] = Inverted(res.z[i].detach().cpu(), label, per, float(res.psnr[i]), res.history)
        log(f"inverted {len(members)} images of {shape[1]}x{shape[0]}: {config.steps} steps x "
            f"{res.chains} chains in {res.seconds:.1f} s; mean PSNR {float(res.psnr.mean()):.2f} dB before quantisation")
    return out


def inversion_runs(model, gen_name: str, inverted: dict[str, Inverted], bits: list[int], quantizer: str,
                   elias: bool, seed: int):
    """``extra_runs`` for :func:`pixseq.codec.compare.run_comparison`: per image, a real latent
    file at each bit depth (decoded from its bytes), and the study's Elias rows (bits counted).
    The files name their generator by its fingerprint only, not by its folder (``compress
    --no-path``): the rate must not depend on where the model lives."""
    from pixseq.codec import latent as fmt
    from pixseq.inversion.codec import decompress_latent, encode_latent
    from pixseq.inversion.generators import as_generator, fit_to
    from pixseq.inversion.quantize import quantize, study_elias
    from pixseq.io import to_uint8

    def file_run(inv: Inverted, h: int, w: int, b: int):
        t0 = time.perf_counter()
        q = quantize(inv.z, b, quantizer, seed)
        data = encode_latent(q, model, h, w, inv.label)
        t1 = time.perf_counter()
        out = decompress_latent(data, model)
        payload_bits = 8 * len(fmt.unpack_latent(data)[1])
        extra = {"invert_s": inv.seconds, "psnr_float": inv.psnr_float, "label": inv.label,
                 "payload_bpp": payload_bits / (h * w)}
        return data, out, inv.seconds + (t1 - t0), time.perf_counter() - t1, extra

    gen = as_generator(model)

    def elias_run(inv: Inverted, h: int, w: int, b: int):
        t0 = time.perf_counter()
        z_hat, used = study_elias(inv.z, b, seed)
        labels = torch.tensor([inv.label], device=gen.device) if inv.label >= 0 else None
        with torch.no_grad():
            img = gen.generate(z_hat[None].to(gen.device), labels)
        out = to_uint8(fit_to(img.float(), (h, w))[0])
        return b"", out, inv.seconds, time.perf_counter() - t0, {"counted_bits": used, "label": inv.label}

    def runs(name: str, img: np.ndarray) -> list:
        inv, (h, w) = inverted[name], img.shape[:2]
        found = [(f"{INVERT}:{gen_name}", f"{b}bit", lambda b=b: file_run(inv, h, w, b)) for b in bits]
        if elias:
            found += [(f"{ELIAS}:{gen_name}", f"{b}bit", lambda b=b: elias_run(inv, h, w, b)) for b in bits]
        return found

    return runs


# --------------------------------------------------------------------------- set metrics

def set_metrics(results, decoded: dict, images: list[tuple[str, np.ndarray]], opts: StudyOptions,
                device: torch.device, notes: list[str]) -> dict[tuple[str, str], dict]:
    """FID / KID / IS of each (codec, setting) over the set against the originals, or ``{}``
    with a note saying why (too few images, no Inception network)."""
    n = len(images)
    if n < opts.set_min:
        notes.append(f"FID/KID/IS n/a: they need a set of at least {opts.set_min} images (--set-min), this one has {n}")
        return {}
    from pixseq.metrics.fid import (
        fid_from_features,
        kid_from_features,
        load_fid_inception,
    )

    try:
        net = load_fid_inception(weights_dir=opts.weights_dir, offline=opts.offline).to(device)
    except PixseqError as exc:
        notes.append(f"FID/KID/IS n/a: {first_line(exc)}")
        return {}
    from pixseq.io import to_tensor

    def feats(batch: list[np.ndarray]) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([net.pool_features(to_tensor(np.stack(batch[i:i + 16])).to(device)).double().cpu()
                              for i in range(0, len(batch), 16)])

    ref = feats([img for _, img in images])
    has_is = getattr(net, "has_classifier", True)
    if not has_is:
        notes.append(f"IS n/a: the Inception Score needs the 1008-way classifier of the official "
                     f"pt_inception-2015-12-05 weights, which {net.source} lacks")
    keys = list(dict.fromkeys((r.codec, r.setting) for r in results))
    out = {("original", ""): _is_of(net, ref) if has_is else {}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for key in keys:
            f = feats([decoded[(name, *key)] for name, _ in images])
            row = {"fid": fid_from_features(ref, f), "kid": kid_from_features(ref, f, subset_size=min(1000, n))[0]}
            out[key] = {**row, **(_is_of(net, f) if has_is else {})}
    said = sorted({first_line(str(w.message)) for w in caught})
    notes += [f"FID/KID over {n} images: {s}" for s in said]
    return out


def _is_of(net, features: torch.Tensor) -> dict:
    from pixseq.metrics.inception_score import inception_score

    probs = torch.softmax(net.logits_unbiased(features.float().to(next(net.parameters()).device)), -1).double().cpu()
    return {"is": inception_score(probs, splits=min(10, features.size(0)))[0]}


# --------------------------------------------------------------------------- the whole run

@contextlib.contextmanager
def _staging(out: Path):
    """A temporary folder beside ``out``, renamed to ``out`` when the block ends well (an older
    report there is moved aside first and removed after); removed on any failure."""
    out = Path(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name[:40]}.", suffix=".tmp", dir=out.absolute().parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the report gets a plain mkdir's permissions
        yield tmp
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name[:40]}.", suffix=".old", dir=out.absolute().parent))
            out.replace(old / "report")
        tmp.replace(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_images(opts: StudyOptions) -> list[tuple[str, np.ndarray]]:
    from pixseq.data import load_data

    data = load_data(opts.images, opts.limit)
    if not len(data):
        raise PixseqError(f"no images in {opts.images}")
    names = data.names or [f"image{i}" for i in range(len(data))]
    return list(zip(names, data.images))


def run_study(opts: StudyOptions, device: torch.device | str = "auto", seed: int = 0,
              log: Callable[[str], None] = print) -> tuple[Path, report.Study]:
    """The whole study: check, load, invert, code, score, report into ``opts.out``; returns
    the page's path and what was measured (:func:`pixseq.report.study.text_table` prints its
    summary; ``decoded`` holds every output image)."""
    from pixseq.checkpoint import load_model
    from pixseq.codec import CODEC_MODEL_KINDS, compare
    from pixseq.codec.bench import codec_names
    from pixseq.device import resolve_device
    from pixseq.inversion.generators import as_generator
    from pixseq.inversion.optimize import recipe
    from pixseq.runtime import notice, seed_everything

    check_options(opts)
    names = codec_names(opts.model)
    seed_everything(seed)
    device = resolve_device(device)
    images = _load_images(opts)
    generator = load_model(opts.generator, device=device)
    gen = as_generator(generator)  # an iGPT, a ViT: one line, before any work
    models = [(n, load_model(d, CODEC_MODEL_KINDS, device)) for n, d in zip(names, opts.model)]
    scorer = Scorer(opts, device, min(min(img.shape[:2]) for _, img in images), notice)
    config = recipe(opts.recipe, steps=opts.steps, restarts=opts.restarts, lr=opts.lr, seed=seed)
    inverted = invert_images(gen, images, config, log)
    gen_name = Path(str(opts.generator)).name.removeprefix("zoo:")
    runs = inversion_runs(generator, gen_name, inverted, list(opts.bits or STUDY_BITS), opts.quantizer,
                          not opts.no_elias, seed)
    results, decoded = compare.run_comparison(images, models, opts.qualities or STUDY_QUALITIES,
                                              opts.scales or compare.DEFAULT_SCALES, opts.batch, scorer,
                                              log=log, extra_runs=runs)
    notes = scorer.notes
    sets = set_metrics(results, decoded, images, opts, device, notes)
    originals = {name: scorer.reference_brisque(img) for name, img in images}
    for note in notes:
        notice(note)
    study = report.Study(results, decoded, images, scorer.columns, sets, originals, notes,
                         meta=_meta(opts, config, seed, inverted, gen_name))
    with _staging(opts.out) as tmp:
        report.write_study(study, tmp)
    return Path(opts.out) / "index.html", study


def _meta(opts: StudyOptions, config, seed: int, inverted: dict[str, Inverted], gen_name: str) -> dict:
    from dataclasses import asdict

    first = next(iter(inverted.values()))
    return {"images": opts.images, "generator": str(opts.generator), "generator_name": gen_name,
            "models": list(opts.model), "bits": list(opts.bits or STUDY_BITS), "quantizer": opts.quantizer,
            "qualities": list(opts.qualities or STUDY_QUALITIES), "preset": opts.preset, "seed": seed,
            "inversion": {**asdict(config), "recipe": opts.recipe,
                          "seconds_per_image": float(np.mean([v.seconds for v in inverted.values()])),
                          "psnr_float_mean": float(np.mean([v.psnr_float for v in inverted.values()]))},
            "history": first.history, "set_min": opts.set_min}

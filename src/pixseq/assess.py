"""Assessment of regenerated images against their references: ``pixseq assess`` as a library call.

REF and DIST are two images or two folders; folder images are matched by relative file
name (exactly, else ignoring the suffix so ``a.png`` matches ``a.jpg``), and files without a
partner are listed, never silently dropped. Per image pair: ViT-Score (or a label-overlap
score under its backbone's own name), SSIM, MSE, PSNR, LPIPS and BRISQUE of both images;
for folders also the set metrics FID, KID and IS. ``preset="thesis"`` swaps SSIM/PSNR for
the original study's settings, labelled as such.

Metrics whose weights are missing are skipped with a note under ``metrics="all"`` and are a
clear error when asked for by name. The metrics themselves are pure functions in
:mod:`pixseq.metrics`; this module reads the images and loads the networks they need, and
:mod:`pixseq.report.assess` writes the JSON, CSV and HTML outputs.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pixseq.errors import PixseqError
from pixseq.io import check_output, claim_output, list_images, load_image, real_path, to_tensor
from pixseq.runtime import notice
from pixseq.weights import check_weights_dir

PAIR_METRICS = ("vit_score", "ssim", "ms_ssim", "mse", "psnr", "lpips", "brisque", "clip_score")
SET_METRICS = ("fid", "kid", "is")
ALL = ("vit_score", "ssim", "mse", "psnr", "lpips", "brisque", "fid", "kid", "is")
MODEL_METRICS = ("vit_score", "lpips", "fid", "kid", "is", "clip_score")
#: metrics of one image alone (DIST may be left out for them)
NO_REFERENCE = ("brisque", "clip_score")


@dataclass
class AssessOptions:
    """Everything ``pixseq assess`` can be told (its options, by the same names)."""

    ref: Path
    dist: Path
    metrics: str = "all"
    backbone: str | None = None
    k: int | None = None  # None: the backbone's default (100; a tenth of a pixseq classifier's labels)
    variant: str = "overlap"
    lpips_net: str = "alex"
    preset: str = "standard"
    resize: bool = False
    json: Path | None = None
    csv: Path | None = None
    html: Path | None = None
    weights_dir: Path | None = None
    offline: bool | None = None
    prompt: str | None = None  # the text of clip_score
    clip: str = "ViT-B-32"  # the guide of clip_score (pixseq.guidance.clip.load_guide)
    clip_weights: Path | None = None
    force: bool = False  # replace existing --json / --csv / --html outputs


@dataclass
class Assessment:
    """What :func:`assess` measured: a row per pair, the columns' labels, the set metrics."""

    rows: list[dict]
    columns: dict[str, str]
    sets: dict[str, dict]
    pairs: "Pairs"
    notes: list[str]


# --------------------------------------------------------------------------- inputs

@dataclass
class Pairs:
    """Matched (name, ref path, dist path) triples and the files left without a partner."""

    items: list[tuple[str, Path, Path]]
    ref_only: list[str] = field(default_factory=list)
    dist_only: list[str] = field(default_factory=list)
    folders: bool = False


def find_pairs(ref: Path, dist: Path) -> Pairs:
    """Two files -> one pair; two folders -> pairs matched by relative name (suffix-insensitive fallback)."""
    for p in (ref, dist):
        if not p.exists():
            raise PixseqError(f"not found: {p}")
    if ref.is_file() and dist.is_file():
        return Pairs([(dist.name, ref, dist)])
    if ref.is_dir() != dist.is_dir():
        raise PixseqError("REF and DIST must both be images or both be folders")
    refs = {str(f.relative_to(ref)): f for f in list_images(ref)}
    dists = {str(f.relative_to(dist)): f for f in list_images(dist)}
    for folder, files in ((ref, refs), (dist, dists)):
        if not files:
            raise PixseqError(f"no images found in folder {folder}")
    match = _match_names(list(refs), list(dists))
    items = [(name, refs[name], dists[match[name]]) for name in refs if name in match]
    if not items:
        raise PixseqError(f"no file names in {dist} match those in {ref}")
    used = set(match.values())
    return Pairs(items, [n for n in refs if n not in match], sorted(set(dists) - used), folders=True)


def _match_names(refs: list[str], dists: list[str]) -> dict[str, str]:
    """REF name -> DIST name: identical relative names first, then, among the names left,
    the same name without its suffix (``a.png`` <-> ``a.jpg``) where that is unambiguous
    (one REF and one DIST file with that stem; otherwise both stay unmatched)."""
    exact = set(refs) & set(dists)
    match = {name: name for name in exact}

    def by_stem(names: list[str]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name in names:
            if name not in exact:
                groups.setdefault(str(Path(name).with_suffix("")), []).append(name)
        return groups

    left = by_stem(dists)
    for stem, names in by_stem(refs).items():
        if len(names) == 1 and len(left.get(stem, ())) == 1:
            match[names[0]] = left[stem][0]
    return match


def load_pair(ref: Path, dist: Path, resize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images as (1,3,H,W) in [0,1]; sizes must match unless ``resize``."""
    a, b = load_image(ref), load_image(dist)
    if a.shape != b.shape:
        if not resize:
            raise PixseqError(f"size mismatch: {ref} is {a.shape[1]}x{a.shape[0]}, {dist} is "
                              f"{b.shape[1]}x{b.shape[0]}; pass --resize to resize DIST to the reference size")
        from PIL import Image

        b = np.asarray(Image.fromarray(b).resize((a.shape[1], a.shape[0]), Image.BICUBIC))
    return to_tensor(np.array(a))[None], to_tensor(np.array(b))[None]  # writable copies for torch


def parse_metrics(spec: str, folders: bool) -> tuple[list[str], bool]:
    """(metric names, explicitly requested?)."""
    names = [m.strip().lower().replace("-", "_") for m in spec.split(",") if m.strip()]
    if names == ["all"]:
        return [m for m in ALL if folders or m not in SET_METRICS], False
    if "all" in names:
        raise PixseqError("--metrics: 'all' stands alone; name metrics one by one to choose some")
    known = PAIR_METRICS + SET_METRICS
    for m in names:
        if m not in known:
            raise PixseqError(f"unknown metric {m!r} (known: all, {', '.join(known)})")
        if m in SET_METRICS and not folders:
            raise PixseqError(f"{m} is a set metric: give two folders of images")
    if not names:
        raise PixseqError("--metrics is empty")
    return list(dict.fromkeys(names)), True


# --------------------------------------------------------------------------- models

@dataclass
class Models:
    """The networks the requested metrics need, plus notes about what was substituted or skipped."""

    classifier: object = None
    lpips: object = None
    guide: object = None
    inception: object = None
    notes: list[str] = field(default_factory=list)


def load_models(metrics: list[str], explicit: bool, opts: AssessOptions, device: torch.device) -> Models:
    # Each model's module is imported only when its metric is asked for: the FID and LPIPS
    # modules pull in torchvision (~2.5 s of start-up here), which pixel metrics never need.
    models, wd, off = Models(), opts.weights_dir, opts.offline

    def attempt(metric: str, loader):
        try:
            return loader()
        except PixseqError as exc:
            if explicit:
                raise
            models.notes.append(f"skipped {metric}: {exc}")
            return None

    if "vit_score" in metrics:
        from pixseq.metrics.backbones import default_classifier, load_classifier

        if opts.backbone:  # named by the user: missing weights are an error, never a substitution
            models.classifier = load_classifier(opts.backbone, wd, off).to(device)
            if models.classifier.class_names:
                c = models.classifier
                models.notes.append(f"label-overlap score with the classifier {c.name}: its {len(c.class_names)} "
                                    f"classes, its preprocessing ({c.preprocess.size}x{c.preprocess.size}, no crop); "
                                    f"K = {opts.k or c.default_k}" + ("" if opts.k else " (a tenth of its labels, "
                                                                      "as the study's 100 of ImageNet's 1000)"))
        else:
            models.classifier, note = default_classifier(wd, off)
            models.classifier.to(device)
            if note:
                models.notes.append(note)
    if "lpips" in metrics:
        from pixseq.metrics.lpips import load_lpips

        models.lpips = attempt("lpips", lambda: load_lpips(opts.lpips_net, weights_dir=wd, offline=off))
    if set(metrics) & set(SET_METRICS):
        from pixseq.metrics.fid import load_fid_inception

        models.inception = attempt("/".join(m for m in metrics if m in SET_METRICS),
                                   lambda: load_fid_inception(weights_dir=wd, offline=off))
    if "clip_score" in metrics:
        from pixseq.guidance.clip import load_guide

        models.guide = load_guide(opts.clip, opts.clip_weights, wd, off, device)
        if getattr(models.guide, "scope_note", ""):
            models.notes.append(models.guide.scope_note)
    for m in (models.lpips, models.inception):
        if m is not None:
            m.to(device)
    return models


def column_labels(metrics: list[str], models: Models, opts: AssessOptions) -> dict[str, str]:
    """Column key -> what exactly it holds (stated in every output)."""
    from pixseq.metrics.vit_score import score_label

    thesis = opts.preset == "thesis"
    labels = {
        "vit_score": score_label(models.classifier.name, opts.k, opts.variant) if models.classifier else "",
        "ssim": ("SSIM [thesis preset: scikit-image defaults, 7x7 uniform, sample cov., per-image range]"
                 if thesis else "SSIM (Wang: 11x11 Gaussian s=1.5, range 1)"),
        "ms_ssim": "MS-SSIM (5 scales, range 1)",
        "mse": "MSE ([0,1] scale)",
        "psnr": "PSNR dB [thesis preset: per-image range]" if thesis else "PSNR dB (range 1)",
        "lpips": f"LPIPS ({opts.lpips_net})",
        "brisque_ref": "BRISQUE ref", "brisque_dist": "BRISQUE dist",
        "clip_score_ref": f"CLIP score ref ({opts.clip}, {opts.prompt!r})",
        "clip_score_dist": f"CLIP score ({opts.clip}, {opts.prompt!r})",
    }
    cols = []
    for m in metrics:
        if m in NO_REFERENCE:  # of each image alone: both, or one when DIST is REF (one image alone)
            cols += [f"{m}_dist"] if opts.dist == opts.ref else [f"{m}_ref", f"{m}_dist"]
        elif m in PAIR_METRICS and not (m == "lpips" and models.lpips is None):
            cols.append(m)
    return {c: labels[c] for c in cols}


# --------------------------------------------------------------------------- scoring

def pair_scores(a: torch.Tensor, b: torch.Tensor, columns: dict[str, str], models: Models,
                opts: AssessOptions) -> dict[str, float]:
    """Every per-pair column for one (1,3,H,W) pair."""
    from pixseq.metrics import pixel
    from pixseq.metrics import ssim as ssim_mod
    from pixseq.metrics.brisque import brisque

    def lpips_score() -> torch.Tensor:
        from pixseq.metrics.lpips import lpips  # torchvision: only when LPIPS is asked for

        return lpips(a, b, models.lpips)

    def vit() -> torch.Tensor:
        from pixseq.metrics.vit_score import vit_score

        return vit_score(a, b, models.classifier, opts.k, opts.variant)

    def clip(image: torch.Tensor) -> torch.Tensor:
        from pixseq.metrics.clip_score import clip_score

        return clip_score(image, [opts.prompt] * len(image), models.guide)

    thesis = opts.preset == "thesis"
    fns = {
        "vit_score": vit,
        "ssim": lambda: ssim_mod.ssim_thesis(a, b) if thesis else ssim_mod.ssim(a, b, data_range=1.0),
        "ms_ssim": lambda: ssim_mod.ms_ssim(a, b, data_range=1.0),
        "mse": lambda: pixel.mse(a, b),
        "psnr": lambda: pixel.psnr_thesis(a, b) if thesis else pixel.psnr(a, b, data_range=1.0),
        "lpips": lpips_score,
        "brisque_ref": lambda: brisque(a),
        "brisque_dist": lambda: brisque(b),
        "clip_score_ref": lambda: clip(a),
        "clip_score_dist": lambda: clip(b),
    }
    return {c: float(fns[c]().flatten()[0]) for c in columns}


class SetScores:
    """Streams Inception features of both sets into FID / KID / IS accumulators."""

    def __init__(self, metrics: list[str], model) -> None:
        from pixseq.metrics.fid import FID, KID
        from pixseq.metrics.inception_score import InceptionScore

        self.model, self.metrics = model, [m for m in metrics if m in SET_METRICS]
        self.fid = FID(num_features=model.num_features)
        self.kid = KID()
        self.is_ref, self.is_dist = InceptionScore(), InceptionScore()
        self._classifier = getattr(model, "has_classifier", True)
        self.n = 0

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        with torch.no_grad():
            for images, real in ((a, True), (b, False)):
                pooled = self.model.pool_features(images)  # (B, 2048) float32, on the model's device
                # the logits from the pooled features where the fc weight is (they were taken
                # from the CPU copy: a device mismatch under --device cuda)
                feats = pooled.double().cpu()
                self.fid.update_features(feats, real)
                self.kid.update_features(feats, real)
                if self._classifier:  # the converted offline port has no classifier (IS is skipped)
                    (self.is_ref if real else self.is_dist).update_logits(self.model.logits_unbiased(pooled))
        self.n += 1

    def compute(self, notes: list[str]) -> dict[str, dict]:
        out = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if "fid" in self.metrics:
                source = getattr(self.model, "source", "Inception-v3 pt_inception-2015-12-05")
                out["fid"] = {"label": f"FID ({source}, {self.n} pairs)",
                              "value": self.fid.compute()}
            if "kid" in self.metrics:
                self.kid.subset_size = min(self.kid.subset_size, self.n)
                mean, std = self.kid.compute()
                out["kid"] = {"label": f"KID (subsets of {self.kid.subset_size}, mean ± std)", "value": mean, "std": std}
            if "is" in self.metrics and not self._classifier:
                notes.append(f"skipped is: the Inception Score needs the official pt_inception-2015-12-05 "
                             f"weights' 1008-way classifier, which {self.model.source} lacks")
            elif "is" in self.metrics:
                splits = min(10, self.n)
                self.is_ref.splits = self.is_dist.splits = splits
                for key, m in (("is_dist", self.is_dist), ("is_ref", self.is_ref)):
                    mean, std = m.compute()
                    out[key] = {"label": f"IS {key[3:]} ({splits} splits, mean ± std)", "value": mean, "std": std}
        notes += [str(w.message) for w in caught]
        return out


# --------------------------------------------------------------------------- the whole run

def check_options(opts: AssessOptions, pairs: Pairs) -> None:
    """Everything about the options that can be wrong, checked before any scoring: outputs
    that cannot be written (or would overwrite an input), an empty backbone name, a
    weights folder that is a file."""
    if "clip_score" in opts.metrics and not (opts.prompt or "").strip():
        raise PixseqError("clip_score needs --prompt TEXT (the text each image is scored against)")
    if opts.k is not None and opts.k < 1:
        raise PixseqError(f"-k must be a positive integer, got {opts.k}")
    if opts.backbone is not None and not opts.backbone.strip():
        raise PixseqError("--backbone is empty")
    check_weights_dir(opts.weights_dir)
    folders = [real_path(opts.ref), real_path(opts.dist)] if pairs.folders else []
    inputs = [p for _, *paths in pairs.items for p in paths]
    files: dict[Path, str] = {}
    for flag, path in (("--json", opts.json), ("--csv", opts.csv)):
        if path is None:
            continue
        claim_output(path, flag, force=opts.force, inputs=inputs)
        where = real_path(path)
        if where in files:
            raise PixseqError(f"{files[where]} and {flag} name the same file {path}")
        files[where] = flag
    if opts.html is not None:
        from pixseq.report.html import claim_page_folder

        check_output(opts.html, "--html", folder=True)
        where = real_path(opts.html)
        for file, flag in files.items():  # the file would be written first, then block the folder
            if where == file or file in where.parents:
                raise PixseqError(f"--html {opts.html} and {flag} {file} name the same path")
        for folder in folders:
            if where == folder or folder in where.parents:
                raise PixseqError(f"--html {opts.html} is inside the input folder {folder}: "
                                  "its images would be read as inputs next time")
        claim_page_folder(opts.html, "--html", opts.force)



def alone(opts: AssessOptions) -> AssessOptions:
    """Without DIST: the images of REF alone, scored by the no-reference metrics only
    (``all`` = BRISQUE, and the CLIP score when there is a ``prompt``)."""
    if opts.dist is not None:
        return opts
    if opts.metrics == "all":
        metrics = "brisque,clip_score" if (opts.prompt or "").strip() else "brisque"
    else:
        metrics = opts.metrics
        bad = [m for m in parse_metrics(metrics, True)[0] if m not in NO_REFERENCE]
        if bad:
            raise PixseqError(f"{', '.join(bad)} compare two images: give DIST too "
                              f"(an image alone: {', '.join(NO_REFERENCE)})")
    return dataclasses.replace(opts, dist=opts.ref, metrics=metrics)


def prepare_scoring(metrics: list[str], explicit: bool, opts: AssessOptions,
                    device: torch.device) -> tuple[AssessOptions, Models, dict[str, str]]:
    """What :func:`pair_scores` needs: the networks of ``metrics`` (:func:`load_models`),
    ``opts`` with K resolved for the backbone, and the column labels (``assess`` and the web
    UI's Compress & assess score pairs through this)."""
    models = load_models(metrics, explicit, opts, device)
    if opts.k is None:
        opts = dataclasses.replace(opts, k=models.classifier.default_k if models.classifier is not None else 100)
    classes = len(models.classifier.class_names) if models.classifier is not None else 0
    if classes and opts.k > classes:
        raise PixseqError(f"-k {opts.k} is more than the {classes} classes of the backbone {models.classifier.name}")
    return opts, models, column_labels(metrics, models, opts)


def assess(opts: AssessOptions, device: torch.device | str = "cpu") -> Assessment:
    """``pixseq assess`` as one call: every requested metric for every pair of ``opts.ref`` /
    ``opts.dist``, after every check of the options (outputs included) and before any output
    is written (:func:`pixseq.report.assess.write_outputs` writes them). Notes on what was
    skipped or substituted, and the unmatched files, go out as notices."""
    device = torch.device(device)
    opts = alone(opts)
    pairs = find_pairs(Path(opts.ref), Path(opts.dist))
    check_options(opts, pairs)
    metrics, explicit = parse_metrics(opts.metrics, pairs.folders)
    opts, models, columns = prepare_scoring(metrics, explicit, opts, device)
    sets = SetScores(metrics, models.inception) if models.inception is not None else None
    rows = []
    for name, ref, dist in pairs.items:
        a, b = load_pair(ref, dist, opts.resize)
        a, b = a.to(device), b.to(device)
        try:
            scores = pair_scores(a, b, columns, models, opts)
        except PixseqError as exc:  # e.g. an image too small for SSIM: say which of the pairs
            raise PixseqError(f"{name}: {exc}") from None
        rows.append({"name": name, "ref_path": str(ref), "dist_path": str(dist), **scores})
        if sets is not None:
            sets.update(a, b)
    notes = list(models.notes)
    set_results = {}
    if sets is not None:
        if sets.n < 2:
            msg = "FID/KID/IS need at least 2 matched pairs"
            if explicit:
                raise PixseqError(msg)
            notes.append(f"skipped set metrics: {msg}")
        else:
            set_results = sets.compute(notes)
    for note in notes:
        notice(note)
    if pairs.ref_only or pairs.dist_only:
        notice(f"unmatched files — only in REF: {', '.join(pairs.ref_only) or 'none'}; "
               f"only in DIST: {', '.join(pairs.dist_only) or 'none'}")
    return Assessment(rows, columns, set_results, pairs, notes)

"""Model-based metrics: FID/KID/IS, LPIPS, ViT-Score — each against an independent reference."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from pixseq.metrics.fid import FID, KID, FIDInceptionV3, Reservoir, fid_from_features, frechet_distance, \
    kid_from_features
from pixseq.metrics.inception_score import InceptionScore, inception_score


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / d ** 0.5
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + shift


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook float64 formula with scipy's general sqrtm (the pytorch-fid way)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_scipy_sqrtm():
    a, b = _features(400, 32, 0), _features(300, 32, 1, shift=0.3)
    ref = _scipy_fid(a.numpy(), b.numpy())
    # Both are float64 on a well-conditioned problem (n >> d); the two routes to
    # tr(sqrt(S1 S2)) differ only by round-off (~1e-12), so 1e-6 relative is generous.
    assert fid_from_features(a, b) == pytest.approx(ref, rel=1e-6)
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-8)


def test_streaming_stats_equal_one_shot():
    a, b = _features(257, 16, 2), _features(190, 16, 3, shift=-0.2)
    streamed = FID(num_features=16)
    for chunk in torch.split(a, 37):
        streamed.update_features(chunk, real=True)
    for chunk in torch.split(b, 50):
        streamed.update_features(chunk, real=False)
    # Sums in float64 regrouped: equal up to round-off.
    assert streamed.compute() == pytest.approx(fid_from_features(a, b), rel=1e-10)


def test_fid_fewer_samples_than_dims_warns_not_nan():
    a, b = _features(10, 64, 4), _features(12, 64, 5, shift=0.5)
    m = FID(num_features=64)
    m.update_features(a, True)
    m.update_features(b, False)
    with pytest.warns(UserWarning, match="singular"):
        value = m.compute()
    assert np.isfinite(value) and value > 0


def test_frechet_is_real_for_singular_covariances():
    rank1 = np.outer(np.arange(5.0), np.arange(5.0))
    value = frechet_distance(np.zeros(5), rank1, np.ones(5), np.eye(5) * 1e-12)
    assert np.isfinite(value) and isinstance(value, float)


def _kid_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a,b) = (a.b/d + 1)^3, written out as explicit double sums."""
    d, m, n = x.shape[1], len(x), len(y)
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_unbiased_formula():
    a, b = _features(30, 8, 6), _features(30, 8, 7, shift=0.4)
    # One subset covering every sample: the estimate is the full-sample unbiased MMD^2
    # (the permutation does not change the sums). float64 throughout -> 1e-9 relative.
    mean, std = kid_from_features(a, b, subsets=1, subset_size=30)
    assert mean == pytest.approx(_kid_reference(a.numpy(), b.numpy()), rel=1e-9)
    assert std == 0.0
    same, _ = kid_from_features(a, a.clone(), subsets=5, subset_size=20)
    assert abs(same) < mean  # identical sets: MMD^2 near 0, far below the shifted pair


def test_kid_class_reservoir_is_bounded_and_uniform():
    res = Reservoir(capacity=100, seed=0)
    for chunk in torch.arange(10_000.0).reshape(-1, 50, 1):
        res.add(chunk)
    kept = res.values()[:, 0]
    assert kept.shape == (100,) and res.seen == 10_000
    assert 3000 < float(kept.mean()) < 7000  # a uniform sample of 0..9999, not the first 100
    kid = KID(subsets=3, subset_size=50, max_samples=80)
    kid.update_features(_features(120, 8, 8), True)
    kid.update_features(_features(90, 8, 9, shift=0.3), False)
    assert kid.real.values().shape == (80, 8)
    mean, std = kid.compute()
    assert mean > 0 and std >= 0


def test_inception_score_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 7)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ref = []
    for chunk in np.array_split(p, 4):
        py = chunk.mean(0)
        ref.append(np.exp(np.mean(np.sum(chunk * (np.log(chunk) - np.log(py)), axis=1))))
    mean, std = inception_score(torch.from_numpy(p), splits=4)
    assert mean == pytest.approx(np.mean(ref), rel=1e-10) and std == pytest.approx(np.std(ref), rel=1e-8)
    one_hot = np.eye(5)[np.arange(50) % 5]
    assert inception_score(torch.from_numpy(one_hot), splits=1)[0] == pytest.approx(5.0)  # uniform, confident


def test_fid_inception_has_official_layout():
    from torchvision.models import Inception3

    ours = FIDInceptionV3()
    reference = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    ours_sd, ref_sd = ours.net.state_dict(), reference.state_dict()
    # pt_inception-2015-12-05 uses torchvision's key names and shapes with a 1008-way fc.
    assert list(ours_sd) == list(ref_sd)
    assert all(ours_sd[k].shape == ref_sd[k].shape for k in ref_sd)
    ours.load_official(ref_sd)
    with torch.no_grad():
        feats = ours.eval()(torch.rand(1, 3, 64, 80))
    assert feats.shape == (1, 2048) and torch.isfinite(feats).all()


# --------------------------------------------------------------------------- LPIPS

@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_reference_package_with_same_random_backbone(net):
    lpips_pkg = pytest.importorskip("lpips")
    from pixseq.checkpoint import load_legacy_state
    from pixseq.metrics.lpips import LPIPSNet, lpips, lpips_heads_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation notice for `pretrained=`
        ref = lpips_pkg.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False).eval()
    ours = LPIPSNet(net)
    ours.load_heads(load_legacy_state(lpips_heads_path(net)))
    # Copy the reference's random backbone in torchvision's "features.{i}.*" key layout.
    slices = [getattr(ref.net, f"slice{s}") for s in range(1, 6)]
    ours.load_backbone({f"features.{k}": v for sl in slices for k, v in sl.state_dict().items()})
    a, b = torch.rand(3, 3, 48, 56), torch.rand(3, 3, 48, 56)
    with torch.no_grad():
        expected = ref(a, b, normalize=True).flatten()
    # Same float32 operations in the same order up to the final sum: agreement to ~1e-7;
    # 1e-5 leaves room for BLAS reduction-order differences.
    torch.testing.assert_close(lpips(a, b, ours.eval()), expected, rtol=0, atol=1e-5)
    assert float(lpips(a, a, ours).abs().max()) < 1e-6


def test_lpips_missing_backbone_offline_is_clear(tmp_path):
    from pixseq.errors import PixseqError
    from pixseq.metrics.lpips import load_lpips

    with pytest.raises(PixseqError, match="alexnet-owt-7be5be79.pth.*--weights-dir"):
        load_lpips("alex", weights_dir=tmp_path, offline=True)


# --------------------------------------------------------------------------- ViT-Score

def _tiny_vit_classifier():
    import timm

    from pixseq.metrics.backbones import Preprocess, timm_classifier

    torch.manual_seed(0)
    vit = timm.create_model("vit_base_patch16_384", pretrained=False, img_size=32, patch_size=8,
                            embed_dim=32, depth=1, num_heads=2, num_classes=1000)
    return timm_classifier(vit, "tiny-vit", Preprocess(32, "squash", 0, "bilinear"))


def _naive_overlap(la: np.ndarray, lb: np.ndarray, k: int) -> float:
    top_a = set(np.argsort(-la)[:k].tolist())
    top_b = set(np.argsort(-lb)[:k].tolist())
    return len(top_a & top_b) / k


def _naive_rbo(la: np.ndarray, lb: np.ndarray, k: int, p: float) -> float:
    ra, rb = np.argsort(-la)[:k].tolist(), np.argsort(-lb)[:k].tolist()
    x = [len(set(ra[:d]) & set(rb[:d])) for d in range(1, k + 1)]
    return x[-1] / k * p ** k + (1 - p) / p * sum(x[d - 1] / d * p ** d for d in range(1, k + 1))


def test_vit_score_equals_direct_topk_overlap():
    from pixseq.metrics.vit_score import ViTScore, score_label, vit_score

    clf = _tiny_vit_classifier()
    a = torch.rand(3, 3, 40, 50)
    b = (a + 0.3 * torch.randn_like(a)).clamp(0, 1)
    la, lb = clf.logits(a).numpy(), clf.logits(b).numpy()
    got = vit_score(a, b, clf, k=100)
    expected = [_naive_overlap(la[i], lb[i], 100) for i in range(3)]
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)  # counts / K
    assert 0 < min(expected) < 1  # the check is not vacuous
    for variant in ("overlap", "weighted", "rbo", "cosine"):
        same = vit_score(a, a.clone(), clf, k=100, variant=variant)
        torch.testing.assert_close(same.double(), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-5)
    metric = ViTScore(clf, k=100)
    metric.update(a[:2], b[:2])
    metric.update(a[2:], b[2:])
    assert metric.compute() == pytest.approx(np.mean(expected), abs=1e-6)
    assert metric.label == "label-overlap score (tiny-vit, K=100)"
    assert score_label("vit_b16_study", 100) == "ViT-Score (vit_b16_study, K=100)"


def test_rank_biased_overlap_and_weighted_match_naive():
    from pixseq.metrics.vit_score import rank_biased_overlap, weighted_overlap

    g = torch.Generator().manual_seed(1)
    la, lb = torch.randn(4, 50, generator=g), torch.randn(4, 50, generator=g)
    lb[0] = la[0] + 0.1 * lb[0]  # one similar pair, the rest unrelated
    rbo = rank_biased_overlap(la, lb, k=20, p=0.9)
    naive = [_naive_rbo(la[i].numpy(), lb[i].numpy(), 20, 0.9) for i in range(4)]
    torch.testing.assert_close(rbo, torch.tensor(naive, dtype=torch.float32), rtol=1e-6, atol=1e-6)
    assert rbo[0] > rbo[1:].max()
    w = weighted_overlap(la, lb, k=20)
    assert float(w.min()) >= 0 and float(w.max()) <= 1 and w[0] > w[1:].max()


def test_feature_level_metrics_refuse_bad_input_with_one_clear_error():
    # Raw torch / numpy errors (LinAlgError on NaN, matmul shape errors, ZeroDivisionError)
    # or silent NaN / broadcasting were what these gave before; each is a PixseqError now.
    from pixseq.errors import PixseqError
    from pixseq.metrics.vit_score import cosine_similarity, rank_biased_overlap, topk_overlap, weighted_overlap

    f = _features(30, 8, seed=0)
    nan = f.clone()
    nan[3, 2] = float("nan")
    cases = [
        (lambda: fid_from_features(nan, f), "NaN or infinite"),
        (lambda: fid_from_features(f, f[:, :5]), "expected 8 values per row, got 5"),
        (lambda: fid_from_features(f[:0], f), r"non-empty \(N, D\)"),
        (lambda: fid_from_features(f[0], f), r"non-empty \(N, D\)"),
        (lambda: FID(num_features=0), "positive integer"),
        (lambda: FID(num_features=8).update(torch.rand(2, 3, 32, 32), True), "no feature extractor"),
        (lambda: kid_from_features(f, nan), "NaN or infinite"),
        (lambda: kid_from_features(f, f[:, :5]), "expected 8 values per row"),
        (lambda: kid_from_features(f, f, subsets=0), "subsets >= 1"),
        (lambda: kid_from_features(f, f, subset_size=0), "subset_size >= 2"),
        (lambda: inception_score(torch.softmax(f, 1)[0], splits=1), r"non-empty \(N, D\)"),
        (lambda: inception_score(f, splits=2), "class probabilities"),  # logits, not probabilities
        (lambda: inception_score(torch.softmax(f, 1), splits=0), "splits must be at least 1"),
        (lambda: topk_overlap(f, f[:1], 3), "30 reference rows but 1 distorted"),
        (lambda: weighted_overlap(f, f[:, :5], 3), "expected 8 values per row"),
        (lambda: topk_overlap(nan, f, 3), "NaN or infinite"),
        (lambda: rank_biased_overlap(f, f, 3, p=0), "0 < p < 1"),
        (lambda: cosine_similarity(f, f[:2]), "30 reference rows but 2"),
    ]
    for call, message in cases:
        with pytest.raises(PixseqError, match=message):
            call()
    kid = KID(subsets=2, subset_size=10)
    kid.update_features(f, True)
    with pytest.raises(PixseqError, match="expected 8 values per row"):
        kid.update_features(f[:, :5], False)
    score = InceptionScore(splits=2)
    score.update_logits(f)
    with pytest.raises(PixseqError, match="expected 8 values per row"):
        score.update_logits(f[:, :5])
    # numpy features are fine, and give the same value as tensors
    assert fid_from_features(f.numpy(), (f + 1).numpy()) == pytest.approx(fid_from_features(f, f + 1), rel=1e-12)


def test_lpips_checks_its_pair_like_every_full_reference_metric():
    from pixseq.errors import PixseqError
    from pixseq.metrics.lpips import LPIPSNet, lpips

    model = LPIPSNet("alex").eval()
    x = torch.rand(2, 3, 40, 40)
    for a, b, message in [(x, x[:1], "differ in shape"), (x * 255, x * 255, "data_range"),
                          (x[:, :1], x[:, :1], "RGB"), (x[..., :30, :30], x[..., :30, :30], "at least 31x31")]:
        with pytest.raises(PixseqError, match=message):
            lpips(a, b, model)
    # float64 input runs in the model's dtype (float32) rather than failing in the first conv
    torch.testing.assert_close(lpips(x.double(), x.flip(0).double(), model), lpips(x, x.flip(0), model))


def test_named_backbone_missing_offline_is_clear(tmp_path):
    from pixseq.errors import PixseqError
    from pixseq.metrics.backbones import load_classifier

    with pytest.raises(PixseqError, match="vit_base_patch16_384.orig_in21k_ft_in1k.*--weights-dir"):
        load_classifier("vit_b16_study", weights_dir=tmp_path, offline=True)
    with pytest.raises(PixseqError, match="unknown backbone 'not_a_net'"):
        load_classifier("not_a_net", weights_dir=tmp_path, offline=True)
    with pytest.raises(PixseqError, match="timm--resnet50.a1_in1k.safetensors"):
        load_classifier("resnet50.a1_in1k", weights_dir=tmp_path, offline=True)
    with pytest.raises(PixseqError, match="hf--google--vit-base-patch16-224/config.json"):
        load_classifier("hf:google/vit-base-patch16-224", weights_dir=tmp_path, offline=True)


def test_preprocessing_matches_torchvision_pil_transforms():
    """Tensor preprocessing vs the PIL pipelines the weights were published with."""
    from PIL import Image
    from skimage import data
    from torchvision import transforms as T

    from pixseq.io import to_tensor
    from pixseq.metrics.backbones import Preprocess

    img = data.chelsea()  # 300 x 451: exercises both the short-side resize and the squash
    norm = [T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)]
    lite0 = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), *norm])
    study = T.Compose([T.Resize((384, 384)), *norm])  # the original ViT-Score transform
    x = to_tensor(img.copy())[None]
    for ref_tf, ours in ((lite0, Preprocess(224, "crop", 256, "bicubic")),
                         (study, Preprocess(384, "squash", 0, "bilinear"))):
        ref = ref_tf(Image.fromarray(img))
        got = ours(x)[0]
        assert got.shape == ref.shape
        # PIL rounds its resized pixels to uint8 (up to 1/255 = 0.0078 in these [-1, 1] units) and
        # its filter taps differ slightly from torch's antialiased kernels: 0.02 max, 0.005 mean.
        assert float((got - ref).abs().max()) < 0.02 and float((got - ref).abs().mean()) < 0.005


def _study_pipeline():
    """The study's (PyTorch-Pretrained-ViT README's) preprocessing, on a PIL image."""
    from torchvision import transforms as T

    return T.Compose([T.Resize((384, 384)), T.ToTensor(), T.Normalize(0.5, 0.5)])


def _tiny_b16_layout_vit(seed: int = 0):
    """A timm ViT in vit_base_patch16_384's layout (384 px, 16 px patches, 1000 classes), small
    enough for a test, with random weights (a random head too: timm's is zeros at init)."""
    import timm

    torch.manual_seed(seed)
    vit = timm.create_model("vit_base_patch16_384", pretrained=False, embed_dim=48, depth=2, num_heads=3,
                            num_classes=1000).eval()
    torch.nn.init.normal_(vit.head.weight, std=0.5)
    return vit


def test_the_study_backbone_resizes_an_8bit_image_with_pil_bit_exactly():
    """ViT-Score with the study's backbone: an 8-bit image is resized by PIL on its 8-bit
    pixels, as the study's torchvision Resize((384, 384)) on a PIL image did (the antialiased
    float resize differed by up to 0.02 and moved labels in and out of the top 100 on some
    pairs): the network input is bit for bit torchvision's, so are the logits and top-100.
    A float image (not on the 1/255 grid) takes the tensor resize."""
    from PIL import Image
    from skimage import data

    from pixseq.io import to_tensor
    from pixseq.metrics.backbones import STUDY_PREPROCESS, study_classifier

    rng = np.random.default_rng(0)
    images = [data.chelsea(), rng.integers(0, 256, (200, 517, 3), dtype=np.uint8),  # shrink / both
              rng.integers(0, 256, (384, 384, 3), dtype=np.uint8), rng.integers(0, 256, (97, 64, 3), dtype=np.uint8)]
    ref = torch.stack([_study_pipeline()(Image.fromarray(im)) for im in images[:1]])
    for im in images:
        want = _study_pipeline()(Image.fromarray(im))[None]
        got = STUDY_PREPROCESS(to_tensor(im.copy())[None])
        assert got.dtype == want.dtype and torch.equal(got, want), np.abs((got - want).numpy()).max()
    clf = study_classifier(_tiny_b16_layout_vit())
    x = to_tensor(images[0].copy())[None]
    with torch.no_grad():
        theirs = clf.net(ref)
    assert torch.equal(clf.logits(x), theirs)
    off_grid = x * 0.999 + 0.0005  # a float image: the tensor path, close to but not PIL's
    delta = (STUDY_PREPROCESS(off_grid) - ref).abs()
    assert 0 < float(delta.max()) < 0.03


def test_the_study_vit_scores_as_pytorch_pretrained_vit():
    """The study's pipeline itself: PyTorch-Pretrained-ViT's ViT('B_16_imagenet1k') (random
    weights, shrunk to 2 layers of width 48 in the same key layout) on its README's transform
    of PIL images, against pixseq's study classifier built from that state dict: the same
    logits up to float32 round-off and the same ViT-Score for an image and its JPEG."""
    ppv = pytest.importorskip("pytorch_pretrained_vit", reason="PyTorch-Pretrained-ViT is not installed")
    import copy
    import io

    import timm
    from PIL import Image
    from skimage import data

    from pixseq.io import to_tensor
    from pixseq.metrics.backbones import convert_b16_imagenet1k, study_classifier
    from pixseq.metrics.vit_score import topk_overlap, vit_score

    configs = copy.deepcopy(ppv.model.PRETRAINED_MODELS)
    configs["B_16_imagenet1k"]["config"].update(dim=48, ff_dim=192, num_heads=3, num_layers=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ppv.model, "PRETRAINED_MODELS", configs)
        torch.manual_seed(0)
        theirs = ppv.ViT("B_16_imagenet1k", pretrained=False).eval()
    torch.nn.init.normal_(theirs.fc.weight, std=0.5)  # its head starts at zero: every label tied
    vit = timm.create_model("vit_base_patch16_384", pretrained=False, embed_dim=48, depth=2, num_heads=3,
                            num_classes=1000).eval()
    vit.load_state_dict(convert_b16_imagenet1k(theirs.state_dict()), strict=True)
    clf = study_classifier(vit)
    original = data.astronaut()[:300, :451]
    buf = io.BytesIO()
    Image.fromarray(original).save(buf, format="JPEG", quality=10)
    jpeg = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    with torch.no_grad():
        ref = theirs(torch.stack([_study_pipeline()(Image.fromarray(im)) for im in (original, jpeg)]))
    a, b = to_tensor(original.copy())[None], to_tensor(jpeg.copy())[None]
    ours = clf.logits(torch.cat([a, b]))
    # two implementations of the same network (separate q/k/v against fused qkv): float32 round-off
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-4)
    assert torch.equal(ours[0].topk(100).indices.sort().values, ref[0].topk(100).indices.sort().values)
    assert float(vit_score(a, b, clf)) == float(topk_overlap(ref[:1], ref[1:]))


def test_timm_backbone_loads_from_the_weights_cache(tmp_path):
    """A timm name resolves its hub file in the cache, loads strictly and keeps timm's preprocessing."""
    import timm
    from safetensors.torch import save_file

    from pixseq.metrics.backbones import load_classifier

    name = "mobilenetv3_small_050.lamb_in1k"
    net = timm.create_model(name, pretrained=False).eval()
    save_file(net.state_dict(), str(tmp_path / "timm--mobilenetv3_small_050.lamb_in1k.safetensors"))
    clf = load_classifier(name, weights_dir=tmp_path, offline=True)
    assert clf.name == name and clf.preprocess.size == 224 and clf.preprocess.short_side == int(224 / 0.875)
    x = torch.rand(2, 3, 200, 240)
    with torch.no_grad():
        expected = net(clf.preprocess(x))
    torch.testing.assert_close(clf.logits(x), expected, rtol=0, atol=1e-5)  # same weights, same input
    assert clf.embeddings(x).shape[0] == 2


def test_default_backbone_falls_back_to_lite0_and_says_so(tmp_path):
    from pixseq.metrics.backbones import default_classifier

    clf, note = default_classifier(weights_dir=tmp_path, offline=True)
    assert clf.name == "efficientnet_lite0" and "EfficientNet-Lite0" in note


def test_lite0_label_overlap_falls_with_jpeg_quality():
    """End to end with real weights offline: the score must fall as JPEG quality drops."""
    import io

    from PIL import Image

    from pixseq.data import load_data
    from pixseq.io import to_tensor
    from pixseq.metrics.backbones import load_classifier
    from pixseq.metrics.vit_score import topk_overlap

    clf = load_classifier("efficientnet_lite0")
    photos = load_data("photos", limit=4)  # astronaut, chelsea, coffee, rocket
    qualities = (95, 50, 10, 2)
    per_photo = []
    for img in photos.images:
        versions = [img]
        for quality in qualities:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=quality)
            versions.append(np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
        logits = clf.logits(torch.stack([to_tensor(v) for v in versions]))  # one batch per photo
        per_photo.append(topk_overlap(logits[:1].expand(len(qualities), -1), logits[1:], k=100).numpy())
    means = np.mean(per_photo, axis=0)
    assert all(x > y for x, y in zip(means, means[1:])), means
    assert means[0] > 0.8  # near-lossless JPEG keeps most of the top-100 labels


def test_b16_imagenet1k_key_map_round_trip():
    """A PyTorch-Pretrained-ViT state dict converts to timm keys and gives the same network."""
    import timm

    from pixseq.metrics.backbones import convert_b16_imagenet1k

    vit = timm.create_model("vit_base_patch16_384", pretrained=False, img_size=32, patch_size=8,
                            embed_dim=32, depth=2, num_heads=2, num_classes=1000).eval()
    sd = vit.state_dict()
    luke = {"patch_embedding.weight": sd["patch_embed.proj.weight"], "patch_embedding.bias": sd["patch_embed.proj.bias"],
            "class_token": sd["cls_token"], "positional_embedding.pos_embedding": sd["pos_embed"],
            "norm.weight": sd["norm.weight"], "norm.bias": sd["norm.bias"],
            "fc.weight": sd["head.weight"], "fc.bias": sd["head.bias"]}
    for i in range(2):
        for kind in ("weight", "bias"):
            q, k, v = sd[f"blocks.{i}.attn.qkv.{kind}"].chunk(3)
            luke.update({f"transformer.blocks.{i}.attn.proj_q.{kind}": q, f"transformer.blocks.{i}.attn.proj_k.{kind}": k,
                         f"transformer.blocks.{i}.attn.proj_v.{kind}": v,
                         f"transformer.blocks.{i}.proj.{kind}": sd[f"blocks.{i}.attn.proj.{kind}"],
                         f"transformer.blocks.{i}.pwff.fc1.{kind}": sd[f"blocks.{i}.mlp.fc1.{kind}"],
                         f"transformer.blocks.{i}.pwff.fc2.{kind}": sd[f"blocks.{i}.mlp.fc2.{kind}"],
                         f"transformer.blocks.{i}.norm1.{kind}": sd[f"blocks.{i}.norm1.{kind}"],
                         f"transformer.blocks.{i}.norm2.{kind}": sd[f"blocks.{i}.norm2.{kind}"]})
    converted = convert_b16_imagenet1k(luke)
    assert set(converted) == set(sd)
    assert all(torch.equal(converted[k], sd[k]) for k in sd)


# --------------------------------------------------------------------------- DDP

def _ddp_worker(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    real, fake = _features(40, 6, 20), _features(30, 6, 21, shift=0.3)
    probs = torch.softmax(_features(20, 5, 22) * 3, dim=1)
    fid, kid, iscore = FID(num_features=6), KID(subsets=4, subset_size=20), InceptionScore(splits=2)
    if rank == 0:  # rank 1 sees the rest; rank 0 has no fake images at all
        fid.update_features(real[:25], True)
        kid.update_features(real[:25], True)
        iscore.update_logits(probs[:10].log())
    else:
        fid.update_features(real[25:], True)
        fid.update_features(fake, False)
        kid.update_features(real[25:], True)
        kid.update_features(fake, False)
        iscore.update_logits(probs[10:].log())
    torch.save({"fid": fid.compute(), "kid": kid.compute(), "is": iscore.compute()}, f"{out_dir}/r{rank}.pt")
    dist.destroy_process_group()


def test_set_metrics_combine_across_ddp_ranks(tmp_path):
    import torch.multiprocessing as mp

    # fork: the children reuse the imported torch (seconds instead of tens of seconds)
    mp.start_processes(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    real, fake = _features(40, 6, 20), _features(30, 6, 21, shift=0.3)
    probs = torch.softmax(_features(20, 5, 22) * 3, dim=1)
    one = KID(subsets=4, subset_size=20)
    one.update_features(real, True)
    one.update_features(fake, False)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"r{rank}.pt", weights_only=False)
        # float64 sums regrouped across ranks: equal to round-off.
        assert got["fid"] == pytest.approx(fid_from_features(real, fake), rel=1e-10)
        assert got["kid"] == pytest.approx(one.compute(), rel=1e-6)  # same gathered rows, same subsets
        assert got["is"] == pytest.approx(inception_score(probs, splits=2), rel=1e-10)


# --------------------------------------------------------------------------- real weights (skipped here)

def _need(loader):
    from pixseq.errors import PixseqError

    try:
        return loader()
    except PixseqError as exc:
        pytest.skip(f"weights not in $PIXSEQ_WEIGHTS_DIR: {exc}")


@pytest.mark.weights
def test_real_study_vit_classifies_chelsea_as_a_cat():
    from skimage import data

    from pixseq.io import to_tensor
    from pixseq.metrics.backbones import load_classifier

    clf = _need(lambda: load_classifier("vit_b16_study", offline=True))
    top = int(clf.logits(to_tensor(data.chelsea().copy())[None]).argmax())
    assert 281 <= top <= 285  # ImageNet cat classes (tabby, tiger cat, Persian, Siamese, Egyptian)


@pytest.mark.weights
def test_real_lpips_alex_is_small_for_jpeg_95_and_larger_for_jpeg_10():
    import io

    from PIL import Image
    from skimage import data

    from pixseq.io import to_tensor
    from pixseq.metrics.lpips import load_lpips, lpips

    model = _need(lambda: load_lpips("alex", offline=True))
    img = data.astronaut()
    out = []
    for q in (95, 10):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=q)
        out.append(float(lpips(to_tensor(img.copy())[None], to_tensor(np.array(Image.open(buf)))[None], model)))
    assert out[0] < 0.05 < out[1]

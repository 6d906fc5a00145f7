"""pixseq.data: data specs (folder, fashion-mnist, photos) and their errors."""
from __future__ import annotations

import gzip
import re
import struct

import numpy as np
import pytest

from pixseq import data
from pixseq.errors import PixseqError
from pixseq.io import save_image


def _write_idx(path, arr: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fmnist(tmp_path, monkeypatch):
    """A 5-image Fashion-MNIST in IDX format, found through $PIXSEQ_FASHION_MNIST."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    y = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
    for prefix in ("train", "t10k"):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", x)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", y)
    monkeypatch.setenv("PIXSEQ_FASHION_MNIST", str(tmp_path))
    return x, y


def test_fashion_mnist_spec(fake_fmnist):
    x, y = fake_fmnist
    ds = data.load_data("fashion-mnist:test", limit=3)
    assert len(ds) == 3 and ds.num_classes == 10
    assert ds.images[0].shape == (28, 28, 3)
    np.testing.assert_array_equal(ds.images[1][..., 2], x[1])
    np.testing.assert_array_equal(ds.labels, y[:3])
    assert ds.class_names[9] == "Ankle boot"
    assert data.load_data("fashion-mnist").spec == "fashion-mnist:train"


def test_fashion_mnist_bad_split(fake_fmnist):
    with pytest.raises(PixseqError, match="split"):
        data.load_data("fashion-mnist:validation")


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSEQ_FASHION_MNIST", str(tmp_path / "nowhere"))
    monkeypatch.setattr(data, "FASHION_MNIST_DIRS", ())
    with pytest.raises(PixseqError, match="apt-get install dataset-fashion-mnist"):
        data.load_data("fashion-mnist")


def test_truncated_idx(tmp_path, monkeypatch, fake_fmnist):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    with gzip.open(path, "wb") as fh:
        fh.write(raw[:-10])
    with pytest.raises(PixseqError, match="truncated"):
        data.load_data("fashion-mnist:test")


def test_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(1)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            save_image(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), tmp_path / cls / f"{i}.png")
    ds = data.load_data(str(tmp_path))
    assert ds.class_names == ("cat", "dog")
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1])
    assert ds.names[2] == "dog/0.png"
    assert ds.stacked().shape == (4, 8, 8, 3)
    limited = data.load_data(str(tmp_path), limit=3)
    assert len(limited) == 3 and len(limited.labels) == 3


def test_folder_hidden_entries_and_linked_class_folders(tmp_path):
    """A hidden folder became a class ('.ipynb_checkpoints') and a '._x.png' resource fork
    failed the load; class folders that are symbolic links were not read at all."""
    img = np.zeros((4, 4, 3), np.uint8)
    save_image(img, tmp_path / "data" / "cat" / "0.png")
    (tmp_path / "data" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    save_image(img, tmp_path / "data" / ".ipynb_checkpoints" / "0-checkpoint.png")
    save_image(img, tmp_path / "store" / "dog" / "1.png")
    (tmp_path / "data" / "dog").symlink_to(tmp_path / "store" / "dog", target_is_directory=True)
    ds = data.load_data(str(tmp_path / "data"))
    assert ds.class_names == ("cat", "dog") and ds.names == ["cat/0.png", "dog/1.png"]
    np.testing.assert_array_equal(ds.labels, [0, 1])


def test_idx_header_too_short(tmp_path, monkeypatch, fake_fmnist):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(struct.pack(">HBB", 0, 0x08, 3) + b"\x00\x00")  # 3 dimensions announced, 2 bytes follow
    with pytest.raises(PixseqError, match="header too short"):  # was a struct.error traceback
        data.load_data("fashion-mnist:test")


def test_flat_folder_has_no_labels_and_mixed_sizes_need_resize(tmp_path):
    save_image(np.zeros((8, 8, 3), np.uint8), tmp_path / "a.png")
    save_image(np.zeros((4, 6, 3), np.uint8), tmp_path / "b.png")
    ds = data.load_data(str(tmp_path))
    assert ds.labels is None and ds.num_classes == 0
    with pytest.raises(PixseqError, match="different sizes"):
        ds.stacked()
    assert data.resize_square(ds.images, 5).shape == (2, 5, 5, 3)


def test_empty_folder_and_unknown_spec(tmp_path):
    with pytest.raises(PixseqError, match="no images"):
        data.load_data(str(tmp_path))
    with pytest.raises(PixseqError, match="unknown data spec"):
        data.load_data("imagenet")


def test_specs_that_only_look_like_fashion_mnist(tmp_path, monkeypatch, fake_fmnist):
    """'fashion-mnist-test' was read as the *training* split (any spec starting with the name),
    and an empty spec as the current folder."""
    with pytest.raises(PixseqError, match="unknown data spec 'fashion-mnist-test'"):
        data.load_data("fashion-mnist-test")
    folder = tmp_path / "fashion-mnist-mine"
    folder.mkdir()
    save_image(np.zeros((4, 4, 3), np.uint8), folder / "a.png")
    monkeypatch.chdir(tmp_path)
    assert data.load_data("fashion-mnist-mine").names == ["a.png"]  # a folder, not Fashion-MNIST
    save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "b.png")
    with pytest.raises(PixseqError, match="empty data spec"):
        data.load_data("")


def test_photos_spec():
    ds = data.load_data("photos", limit=2)
    assert ds.names == ["astronaut", "chelsea"]
    assert ds.images[1].shape == (300, 451, 3) and ds.images[1].dtype == np.uint8


def test_labels_for_renumbers_by_class_name(tmp_path):
    """Held-out labels follow the model's / training data's class order, matched by name."""
    img = np.zeros((4, 4, 3), np.uint8)
    for cls in ("zebra", "ant"):  # sorted on load: ant=0, zebra=1
        save_image(img, tmp_path / "two" / cls / "a.png")
    save_image(img, tmp_path / "one" / "zebra" / "a.png")
    save_image(img, tmp_path / "flat" / "a.png")
    two = data.load_data(str(tmp_path / "two"))
    assert list(two.labels) == [0, 1]
    assert list(two.labels_for(["cat", "zebra", "ant"], "the model")) == [2, 1]
    assert list(data.load_data(str(tmp_path / "one")).labels_for(["ant", "zebra"], "x")) == [1]  # one sub-folder
    assert data.load_data(str(tmp_path / "flat")).labels_for(["ant"], "x") is None
    with pytest.raises(PixseqError, match="not in the model: zebra"):
        two.labels_for(["ant", "bee"], "the model")
    # a limit that leaves the unknown class out: only the classes of the images kept count
    assert list(data.load_data(str(tmp_path / "two"), limit=1).labels_for(["ant", "bee"], "the model")) == [0]


def test_folder_limit_reads_only_the_kept_images(tmp_path):
    """--limit used to read the whole folder first: slow on a large one, and an unreadable
    file past the limit failed the run. Classes still come from the whole listing."""
    img = np.zeros((4, 4, 3), np.uint8)
    save_image(img, tmp_path / "a" / "0.png")
    save_image(img, tmp_path / "a" / "1.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    got = data.load_data(str(tmp_path), limit=2)
    assert len(got) == 2 and got.class_names == ("a", "b") and list(got.labels) == [0, 0]
    with pytest.raises(PixseqError):
        data.load_data(str(tmp_path))  # the broken file is read without a limit


@pytest.mark.parametrize("layout, why", [
    (["one/a.png", "one/b.png"], "all its images are in one sub-folder ('one')"),
    (["a.png", "cat/b.png", "dog/c.png"], "1 of its 3 images sit directly in it"),
    (["a.png", "b.png"], "not in class sub-folders"),
])
def test_a_verb_needing_labels_says_why_there_are_none(tmp_path, layout, why):
    """--classes / probe on such a folder said only "has no labels"; the error now says why."""
    for name in layout:
        save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / name)
    s = data.load_data(str(tmp_path))
    assert s.labels is None
    with pytest.raises(PixseqError, match=rf"--classes needs labelled data; .* has no labels: .*{re.escape(why)}"):
        s.require_labels("--classes")
    with pytest.raises(PixseqError, match="the built-in photos have no classes"):
        data.load_data("photos", limit=1).require_labels("a probe")


def test_a_missing_folder_or_a_file_is_named_as_such(tmp_path):
    """A mistyped folder path was an "unknown data spec"; a file given as data too."""
    with pytest.raises(PixseqError, match="data folder not found: .*no/such"):
        data.load_data(str(tmp_path / "no" / "such"))
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(PixseqError, match="is a file; give the folder"):
        data.load_data(str(tmp_path / "a.png"))
    with pytest.raises(PixseqError, match="unknown data spec 'fashoin-mnist'"):
        data.load_data("fashoin-mnist")

"""The web UI in a real browser: ``pixseq ui`` in a subprocess, driven by Playwright through
Debian's Chromium (``scripts/setup.sh --test`` installs both; Playwright's own browser
download cannot work offline).

For each tab: upload or pick, click, wait, read the result from the page; the images the
page shows are fetched and compared with the library's own call on the same input (the UI
must give what ``pixseq complete`` / ``sample`` give). Bad uploads give their one-line
message in the page and the server goes on serving. One server and one browser for the
module; each test leaves a screenshot in the folder printed at the start (or
``$PIXSEQ_UI_SHOTS``).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _ui_server import running_ui

CHROMIUM = os.environ.get("PIXSEQ_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
#: generous: two shared CPU cores, several jobs at once
WAIT_MS = 90_000

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra has it)")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (scripts/setup.sh --test installs Debian's chromium)",
                allow_module_level=True)
pytest.importorskip("gradio", reason="gradio is not installed")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny class-conditional iGPT trained for a few steps with the library's recipe, and
    tiny random models of every other kind a tab uses (Taming, GAN, RRDBNet, VQGAN + CLIP,
    ViT, a denoising GAN)."""
    import torch
    from _codec_models import tiny_taming

    from pixseq.checkpoint import save_pretrained
    from pixseq.classifiers.vit import ViT, ViTConfig
    from pixseq.gans.dcgan import GANConfig
    from pixseq.gans.generators import GeneratorConfig
    from pixseq.gans.translator import CycleGAN, TranslatorConfig
    from pixseq.gans.model import GAN
    from pixseq.gans.train import build_restore
    from pixseq.guidance.clip import random_clip, tiny_clip_config
    from pixseq.models.igpt_train import train_igpt
    from pixseq.tokenizers.vqgan import VQGAN, vqgan_config
    from pixseq.upscale.rrdb import RRDBNet, RRDBNetConfig

    root = tmp_path_factory.mktemp("ui-models")
    train_igpt("fashion-mnist", root / "fm-igpt", image_size=8, palette=8, classes=True, limit=128,
               train={"steps": 4, "batch_size": 16, "ckpt_every": 4, "warmup_steps": 1})
    torch.manual_seed(0)
    save_pretrained(tiny_taming(num_classes=3), root / "tiny-taming", meta={"class_names": ["a", "b", "c"]})
    save_pretrained(GAN(GANConfig(arch="dcgan", image_size=28, latent_dim=8, num_classes=3, width=8,
                                  disc_width=8)), root / "tiny-gan")
    save_pretrained(RRDBNet(RRDBNetConfig(scale=4, num_feat=8, num_block=2, num_grow_ch=4)), root / "tiny-rrdb")
    save_pretrained(VQGAN(vqgan_config(4, 32, 8, 16)), root / "tiny-vq")
    save_pretrained(random_clip(tiny_clip_config()), root / "tiny-clip")
    save_pretrained(ViT(ViTConfig(image_size=16, patch_size=4, num_classes=3, dim=16, depth=2, heads=2, mlp_ratio=2,
                                  class_names=("boot", "bag", "shirt"))), root / "tiny-vit")
    save_pretrained(build_restore("denoise", width=8, depth=2, disc_width=8, image_size=16)[0], root / "tiny-denoise")
    save_pretrained(CycleGAN(TranslatorConfig(generator=GeneratorConfig(width=4, blocks=2), directions=["AtoB", "BtoA"],
                                              domain_a="modern", domain_b="old")), root / "tiny-cyclegan")
    return root


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("PIXSEQ_UI_SHOTS") or tmp_path_factory.mktemp("ui-shots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nweb UI screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    """``pixseq ui`` on a free port with a work folder of its own; stopped (SIGTERM) at the end,
    when the work folder must be empty again."""
    work = tmp_path_factory.mktemp("ui-work")
    log = work.parent / "ui-server.log"
    args = ["--models", str(models), "--work", str(work), "--no-zoo", "--max-upload-mb", "2", "--max-images", "16"]
    with running_ui(args, log) as (proc, url):
        yield {"url": url, "work": work, "proc": proc, "models": models, "log": log}
    assert not _request_bugs(log.read_text()), log.read_text()  # no request ended in a bug
    assert sorted(p.name for p in work.iterdir()) == [], "the server left files in its work folder"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def opened(browser, server):
    """One page for the module (opening one costs seconds here); each test picks its tab."""
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(WAIT_MS)
    pg.goto(server["url"])
    pg.wait_for_selector("#pixseq-header")
    yield pg
    pg.close()


@pytest.fixture
def page(opened, shots, request):
    """The page, with a screenshot of it after the test."""
    yield opened
    opened.screenshot(path=str(shots / f"{request.node.name}.png"), full_page=True)


# ---------------------------------------------------------------- helpers
def wait_status(pg, key: str, text: str, stop_on_error: bool = True) -> str:
    """Wait until tab ``key``'s status box holds ``text`` (or, with ``stop_on_error``, an
    error: then fail at once with it); return the box's text."""
    also = " || box.innerText.includes('Error:')" if stop_on_error else ""
    pg.wait_for_function(f"(() => {{ const box = document.querySelector('#{key}-status'); "
                         f"return box && (box.innerText.includes({text!r}){also}); }})()")
    shown = pg.inner_text(f"#{key}-status")
    assert text in shown, shown
    return shown


def wait_model(pg, key: str, text: str = "pixels") -> str:
    """Wait until tab ``key`` shows its model's details (the page's load event loaded it)."""
    pg.wait_for_function(f"(document.querySelector('#{key}-model-info') || {{}}).innerText?.includes({text!r})")
    return pg.inner_text(f"#{key}-model-info")


def upload(pg, key: str, path: Path) -> None:
    pg.locator(f"#{key}-upload input[type=file]").set_input_files(str(path))


def fetch_image(pg, selector: str) -> np.ndarray:
    src = pg.locator(selector).first.get_attribute("src")
    body = pg.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def set_slider(pg, elem: str, value) -> None:
    box = pg.locator(f"#{elem} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def choose(pg, elem: str, option: str) -> None:
    pg.locator(f"#{elem} input").click()
    pg.get_by_role("option", name=option, exact=True).click()


def open_tab(pg, title: str) -> None:
    pg.get_by_role("tab", name=title).click()


def painted_fraction(pg, selector: str) -> float:
    """The share of a box (an image component) the page paints with something other than the page's
    white background (from a screenshot of the box: what a user sees, not the file)."""
    shot = np.asarray(Image.open(io.BytesIO(pg.locator(selector).first.screenshot())).convert("RGB")).astype(int)
    return float((np.abs(shot - 255).sum(axis=2) > 30).mean())


@pytest.fixture(scope="module")
def garment(tmp_path_factory) -> tuple[Path, np.ndarray]:
    from pixseq.data import load_fashion_mnist

    image = load_fashion_mnist("test", limit=1).images[0]  # an ankle boot, 28x28
    path = tmp_path_factory.mktemp("ui-in") / "boot.png"
    Image.fromarray(image).save(path)
    return path, image


# ---------------------------------------------------------------- the tabs
def test_complete_gives_the_library_s_grid(page, server, garment):
    from pixseq.checkpoint import load_model
    from pixseq.models.generate import completion_grid, sampling_options

    path, image = garment
    open_tab(page, "Complete")
    assert "8x8 pixels, 10 classes" in wait_model(page, "complete")
    choose(page, "complete-pick", "fashion-mnist: Ankle boot (test #0)")  # test image 0 is that boot
    wait_status(page, "complete", "picked fashion-mnist: Ankle boot (test #0): 28x28 pixels")
    set_slider(page, "complete-rows", 3)
    set_slider(page, "complete-num", 5)
    page.click("#complete-run")
    text = wait_status(page, "complete", "kept")
    assert "top 3 of 8 rows kept | 5 completions" in text
    assert "resized to 8x8" in text and "using class" in text  # the library's notices, in the page
    shown = fetch_image(page, "#complete-grid img")
    model = load_model(server["models"] / "fm-igpt")
    expect, _ = completion_grid(model, [("the image", image)], 3 / 8, 5, None, **sampling_options(seed=0))
    np.testing.assert_array_equal(shown, expect)  # exactly the CLI's grid: the same call, same seed


def test_sample_with_a_class_and_top_k(page, server):
    from pixseq.checkpoint import load_model
    from pixseq.models.generate import sample_grid, sampling_options

    open_tab(page, "Sample")
    wait_model(page, "sample")
    choose(page, "sample-model", "tiny-taming")
    wait_status(page, "sample", "tiny-taming ready")
    choose(page, "sample-class", "1: b")
    set_slider(page, "sample-num", 3)
    page.locator("#sample-sampling button").first.click()
    set_slider(page, "sample-top-k", 5)
    page.locator("#sample-seed input").fill("7")
    page.click("#sample-run")
    assert "3 samples (class 1), 16x16 each (tiny-taming)" in wait_status(page, "sample", "samples (")
    shown = fetch_image(page, "#sample-grid img")
    model = load_model(server["models"] / "tiny-taming")
    expect, _ = sample_grid(model, 3, 1, **sampling_options(top_k=5, seed=7))
    np.testing.assert_array_equal(shown, expect)


def test_compress_and_assess_at_a_target_rate(page, server, tmp_path):
    from pixseq.checkpoint import load_model
    from pixseq.codec import decompress

    from skimage import data

    photo = np.ascontiguousarray(data.chelsea()[::6, ::6])  # 50x76
    path = tmp_path / "cat.png"
    Image.fromarray(photo).save(path)
    open_tab(page, "Compress & assess")
    upload(page, "compress", path)
    wait_status(page, "compress", "loaded cat.png")
    for codec in ("WEBP", "AVIF", "pixseq: tiny-taming"):
        page.locator("#compress-codecs").get_by_label(codec, exact=True).uncheck()
    page.locator("#compress-bpp input").fill("2")
    page.click("#compress-run")
    text = wait_status(page, "compress", "codecs within")
    assert "2 of 2 codecs within 2 bpp on 76x50 pixels" in text
    assert "EfficientNet-Lite0" in text and "skipped lpips" in text  # offline: the fallback is named
    table = page.inner_text("#compress-table")
    rows = {line.split("\t")[0]: line.split("\t") for line in table.splitlines()}
    for codec in ("jpeg", "fm-igpt"):
        assert float(rows[codec][2]) <= 2.0
    assert "label-overlap score (efficientnet_lite0" in table and "SSIM" in table and "BRISQUE dist" in table
    assert page.locator("#compress-gallery img").count() == 3  # original + 2 decoded
    link = page.locator("#compress-files a").first
    data_pxs = page.request.get(link.get_attribute("href")).body()
    decoded = decompress(data_pxs, load_model(server["models"] / "fm-igpt"))
    assert decoded.shape == photo.shape
    assert len(data_pxs) * 8 / (76 * 50) == pytest.approx(float(rows["fm-igpt"][2]), abs=1e-4)


def test_models_tab_shows_the_cards(page):
    open_tab(page, "Sample")  # tiny-gan: loaded by this choice only, after the page opened
    choose(page, "sample-model", "tiny-gan")
    wait_status(page, "sample", "tiny-gan ready")
    choose(page, "sample-model", "tiny-taming")  # as the later tests expect it
    wait_status(page, "sample", "tiny-taming ready")
    open_tab(page, "Models")
    page.wait_for_function("document.querySelector('#models-card').innerText.includes('fm-igpt')")
    # opening the tab shows what is loaded now, not what was when the page opened
    page.wait_for_function("document.querySelector('#models-list').innerText.includes('tiny-gan\\tgan\\tSample\\tloaded')")
    listing = page.inner_text("#models-list")
    assert "fm-igpt\tigpt\tComplete, Sample, Compress & assess" in listing
    assert "tiny-gan\tgan\tSample" in listing and "tiny-rrdb\trrdbnet\tUpscale" in listing
    assert "tiny-clip\tclip\tText to image, Classify" in listing
    assert "tiny-cyclegan\tcyclegan\tTranslate" in listing and "tiny-denoise\trestore\tTranslate" in listing
    card = page.inner_text("#models-card")
    assert "Run settings" in card and "fashion-mnist" in card and "final_loss" in card
    assert ", loaded" in card  # the Complete tab loaded fm-igpt when the page opened


# ---------------------------------------------------------------- bad uploads
def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """A text file named .png, a truncated PNG, a 100-megapixel image: file -> expected message."""
    text = folder / "notes.png"
    text.write_text("this is not an image\n")
    good = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(good, format="PNG")
    truncated = folder / "cut.png"
    truncated.write_bytes(good.getvalue()[:-40])
    huge = folder / "huge.png"
    Image.new("1", (10_000, 10_000)).save(huge)  # 1-bit: a genuine 100 MP PNG of a few kB
    return {"text": (text, "not an image file (format not recognised): notes.png"),
            "truncated": (truncated, "cannot read image cut.png"),
            "huge": (huge, "image too large: huge.png has 10000x10000 = 100000000 pixels, limit is 64000000")}


def test_bad_uploads_give_a_message_and_the_server_goes_on(page, garment, tmp_path):
    open_tab(page, "Complete")
    for name, (path, message) in _bad_files(tmp_path).items():
        upload(page, "complete", path)
        text = wait_status(page, "complete", message, stop_on_error=False)  # each upload its own message
        assert "/tmp" not in text and str(tmp_path) not in text  # the file's name, not the server's path
    upload(page, "complete", garment[0])  # still serving, and the upload box is ready again
    wait_status(page, "complete", "loaded boot.png", stop_on_error=False)
    assert page.locator("#complete-pick input").input_value() == ""  # no longer names the earlier pick
    page.click("#complete-run")
    wait_status(page, "complete", "kept")


def test_an_upload_over_the_size_limit_is_refused_in_the_page(page, garment, tmp_path):
    big = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big)  # ~3 MB of noise: over the server's --max-upload-mb 2
    assert big.stat().st_size > 2 * 1024 * 1024
    open_tab(page, "Complete")
    upload(page, "complete", big)
    # Gradio refuses it before it is sent, in a message box of the page
    page.get_by_text('exceed the maximum allowed size of 2.0 Mb: "big.png"').wait_for()
    page.get_by_test_id("toast-close").first.click()  # closed: it would stand in the next tests' screenshots
    page.get_by_test_id("toast-close").wait_for(state="detached")
    upload(page, "complete", garment[0])  # the page goes on working
    wait_status(page, "complete", "loaded boot.png", stop_on_error=False)


def test_a_bad_option_is_a_message_not_a_crash(page):
    open_tab(page, "Sample")
    wait_model(page, "sample")
    page.locator("#sample-size textarea").fill("12x")
    page.click("#sample-run")
    wait_status(page, "sample", "--size must look like 96x64", stop_on_error=False)


def test_outputs_stay_in_the_work_folder(page, server, garment):
    open_tab(page, "Complete")
    upload(page, "complete", garment[0])
    wait_status(page, "complete", "loaded")
    page.click("#complete-run")
    wait_status(page, "complete", "kept")
    src = page.locator("#complete-grid img").first.get_attribute("src")
    served = src.split("file=", 1)[1]
    assert Path(served).resolve().is_relative_to(server["work"].resolve())


# ---------------------------------------------------------------- the long runs and the other systems
def test_text_to_image_runs_to_the_end(page, server, tmp_path):
    from pixseq.guidance.text_to_image import generate_config, text_to_image

    open_tab(page, "Text to image")
    page.locator("#text-prompt textarea").fill("a red shoe|blurry:-0.5")
    choose(page, "text-vqgan", "tiny-vq")
    choose(page, "text-guide", "tiny-clip")
    page.locator("#text-size textarea").fill("30x22")
    set_slider(page, "text-steps", 6)
    set_slider(page, "text-cutn", 4)
    page.click("#text-run")
    text = wait_status(page, "text", "CLIP score")
    assert "32x24, 6 steps" in text and "generating 32x24" in text  # rounded to the factor 4, with a notice
    shown = fetch_image(page, "#text-image img")
    assert shown.shape[:2] == (24, 32) and painted_fraction(page, "#text-image") > 0.5  # fills its box, not a speck
    m = server["models"]
    expect = text_to_image("a red shoe|blurry:-0.5", m / "tiny-vq", m / "tiny-clip", tmp_path / "t.png",
                           (22, 30), generate_config(steps=6, cutn=4, seed=0, frame_every=5))
    np.testing.assert_array_equal(shown, np.asarray(Image.open(expect.out).convert("RGB")))


def test_stop_ends_a_long_run_and_keeps_its_image(page):
    open_tab(page, "Text to image")
    page.locator("#text-prompt textarea").fill("a bag")
    set_slider(page, "text-steps", 1000)
    page.click("#text-run")
    wait_status(page, "text", " of 1000 (")  # the progress line: steps done of 1000
    page.click("#text-stop")
    assert "stopped; the image of the last finished step" in wait_status(page, "text", "stopped")
    assert page.locator("#text-image img").count() == 1


def test_upscale_gives_the_library_s_image(page, server, tmp_path):
    from pixseq.checkpoint import load_model
    from pixseq.upscale import upscale_image

    image = np.random.default_rng(4).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "small.png")
    open_tab(page, "Upscale")
    upload(page, "upscale", tmp_path / "small.png")
    wait_status(page, "upscale", "loaded small.png")
    choose(page, "upscale-model", "tiny-rrdb")
    page.click("#upscale-run")
    assert "24x20 -> 96x80 with tiny-rrdb (1 tile of 24 px" in wait_status(page, "upscale", "->")
    link = page.locator("#upscale-file a").first
    shown = np.asarray(Image.open(io.BytesIO(page.request.get(link.get_attribute("href")).body())))
    np.testing.assert_array_equal(shown, upscale_image(load_model(server["models"] / "tiny-rrdb"), image))


def test_translate_with_a_cyclegan_and_a_restoration_model(page, server, garment):
    from pixseq.checkpoint import load_model
    from pixseq.gans.model import restore_images
    from pixseq.gans.translator import translate_image
    from pixseq.report.grid import make_grid

    m = server["models"]
    open_tab(page, "Translate")
    upload(page, "translate", garment[0])
    wait_status(page, "translate", "loaded boot.png")
    choose(page, "translate-model", "tiny-cyclegan")
    assert "cyclegan modern -> old" in wait_model(page, "translate", "cyclegan")
    page.locator("#translate-direction").get_by_label("BtoA").check()
    page.click("#translate-run")
    assert "cyclegan old -> modern" in wait_status(page, "translate", "norm statistics")
    np.testing.assert_array_equal(fetch_image(page, "#translate-image img"),
                                  translate_image(load_model(m / "tiny-cyclegan"), garment[1], "BtoA"))
    choose(page, "translate-model", "tiny-denoise")
    wait_model(page, "translate", "denoise")
    page.locator("#translate-restore button").first.click()
    page.locator("#translate-degrade input").check()
    page.click("#translate-run")
    assert "degraded | restored | original (denoise)" in wait_status(page, "translate", "restored")
    [(restored, degraded)] = restore_images(load_model(m / "tiny-denoise"), [garment[1]], None, True, 0)
    np.testing.assert_array_equal(fetch_image(page, "#translate-image img"),
                                  make_grid([degraded, restored, garment[1]], ncol=3))


def test_classify_with_a_classifier_and_zero_shot(page, server, garment):
    from pixseq.checkpoint import load_model
    from pixseq.classifiers.predict import classify

    open_tab(page, "Classify")
    upload(page, "classify", garment[0])
    wait_status(page, "classify", "loaded boot.png")
    choose(page, "classify-model", "tiny-vit")
    page.click("#classify-run")
    top = classify(load_model(server["models"] / "tiny-vit"), [garment[1]], top_k=3)[0]
    assert f"{top.label} ({top.probability:.1%}) by tiny-vit" in wait_status(page, "classify", "by tiny-vit")
    assert page.locator("#classify-attention img").count() == 1  # the attention rollout
    choose(page, "classify-model", "tiny-clip")
    page.locator("#classify-labels textarea").fill("a boot, a bag")
    page.click("#classify-run")
    wait_status(page, "classify", "of 2 labels, zero-shot by tiny-clip")


def _request_bugs(text: str) -> list[str]:
    """The server log's tracebacks, less those of a browser that went away mid-request
    (starlette's ClientDisconnect when a test's page closes while an upload streams: the
    client's doing, not a request that failed)."""
    blocks = text.split("Traceback (most recent call last):")[1:]
    return [b for b in blocks if "starlette.requests.ClientDisconnect" not in b]


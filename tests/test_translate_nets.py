"""The pix2pix / CycleGAN networks and converters against reference networks written here
from the papers' description in the official repository's key layout (Isola et al. 2017,
appendix 6.1; Zhu et al. 2017, appendix 7.2; module nesting and indices as in
junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py``): random weights saved in that
layout must convert and give the same outputs; the vintagify generator must match its own
package's network; the norms with fixed statistics must equal whole-image normalisation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pixseq.errors import PixseqError
from pixseq.gans.generators import GeneratorConfig, build_generator, fixed_norm_stats, record_norm_stats
from pixseq.gans.official import convert_generator, convert_official


# ---------------------------------------------------------------- reference networks (official layout)
def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    return nn.InstanceNorm2d(ch, affine=kind == "instance-affine")


class RefResBlock(nn.Module):
    """x + [pad, conv3, norm, relu, (dropout), pad, conv3, norm] as ``conv_block``."""

    def __init__(self, dim: int, norm: str, dropout: bool, zero: bool) -> None:
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = []
        for second in (False, True):
            if not zero:
                layers.append(nn.ReflectionPad2d(1))
            layers += [nn.Conv2d(dim, dim, 3, padding=1 if zero else 0, bias=bias), _norm(norm, dim)]
            if not second:
                layers.append(nn.ReLU(True))
                if dropout:
                    layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


def ref_resnet(cin: int, cout: int, ngf: int, n: int, norm: str, dropout=False, zero=False) -> nn.Module:
    """c7s1-ngf, d2ngf, d4ngf, n x R, u2ngf, ungf, c7s1-cout in one Sequential ``model``."""
    bias = norm != "batch"
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7, bias=bias), _norm(norm, ngf), nn.ReLU(True)]
    for m in (1, 2):
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1, bias=bias), _norm(norm, ngf * m * 2), nn.ReLU(True)]
    layers += [RefResBlock(ngf * 4, norm, dropout, zero) for _ in range(n)]
    for m in (4, 2):
        layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, output_padding=1, bias=bias),
                   _norm(norm, ngf * m // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7), nn.Tanh()]
    net = nn.Sequential()
    net.model = nn.Sequential(*layers)
    net.forward = net.model.forward
    return net


class RefUnetBlock(nn.Module):
    """One level: x -> cat(x, up(sub(down(x)))) (the outermost returns up(sub(down(x))))."""

    def __init__(self, outer, inner, cin=None, sub=None, outermost=False, innermost=False, norm="batch",
                 dropout=False) -> None:
        super().__init__()
        self.outermost = outermost
        bias = norm != "batch"
        cin = outer if cin is None else cin
        down = nn.Conv2d(cin, inner, 4, 2, 1, bias=bias)
        if outermost:
            seq = [down, sub, nn.ReLU(), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            seq = [nn.LeakyReLU(0.2), down, nn.ReLU(), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias),
                   _norm(norm, outer)]
        else:
            seq = [nn.LeakyReLU(0.2), down, _norm(norm, inner), sub, nn.ReLU(),
                   nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=bias), _norm(norm, outer)]
            if dropout:
                seq.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


def ref_unet(cin: int, cout: int, downs: int, ngf: int, norm: str, dropout: bool) -> nn.Module:
    block = RefUnetBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
    for _ in range(downs - 5):
        block = RefUnetBlock(ngf * 8, ngf * 8, sub=block, norm=norm, dropout=dropout)
    for outer, inner in ((ngf * 4, ngf * 8), (ngf * 2, ngf * 4), (ngf, ngf * 2)):
        block = RefUnetBlock(outer, inner, sub=block, norm=norm)
    net = nn.Module()
    net.model = RefUnetBlock(cout, ngf, cin=cin, sub=block, outermost=True, norm=norm)
    net.forward = net.model.forward
    return net


def _randomise(net: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random weights and batch-norm statistics (so a wrong mapping cannot hide), as a state dict."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name
                        else torch.randn(t.shape, generator=g) * 0.2)
    return {k: v.clone() for k, v in net.state_dict().items()}


def _mine(state: dict, image_stats: bool | None = None, **kw):
    cfg, converted = convert_generator(state, **kw)
    if image_stats is not None:
        cfg.image_stats = image_stats
    net = build_generator(cfg)
    net.load_state_dict(converted, strict=True)
    return cfg, net.eval()


# Tolerances: the same float32 operations in the same order, except that the U-Net concatenates
# without LeakyReLU'd skips (the official in-place LeakyReLU rewrites the skip, but the next
# ReLU makes the two equal): 1e-5 on outputs in [-1, 1].
@pytest.mark.parametrize("norm,dropout,zero", [("instance", False, False), ("batch", True, False),
                                               ("instance-affine", False, True)])
def test_official_resnet_generators_convert_exactly(norm, dropout, zero):
    torch.manual_seed(0)
    ref = ref_resnet(3, 3, 4, 3, norm, dropout, zero)
    state = _randomise(ref, 1)
    cfg, net = _mine(state)
    assert (cfg.arch, cfg.blocks, cfg.width, cfg.norm, cfg.dropout) == ("resnet", 3, 4, norm, dropout)
    assert cfg.padding == ("zero" if zero else "reflect")
    x = torch.randn(2, 3, 20, 24)
    with torch.no_grad():
        assert torch.allclose(net(x), ref.eval()(x), atol=1e-5)


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_official_unet_generators_convert_exactly(norm):
    torch.manual_seed(0)
    ref = ref_unet(1, 3, 6, 4, norm, dropout=True)
    state = _randomise(ref, 2)
    cfg, net = _mine(state)
    assert (cfg.arch, cfg.downs, cfg.in_channels, cfg.out_channels, cfg.norm) == ("unet", 6, 1, 3, norm)
    assert cfg.image_stats == (norm == "batch")  # the pix2pix test protocol: each image's own statistics
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        _, running = _mine(state, image_stats=False)
        assert torch.allclose(running(x), ref.eval()(x), atol=1e-5)  # running statistics, no dropout
        ref.train()  # batch statistics of the one test image, as the official test script
        for m in ref.modules():
            if isinstance(m, nn.Dropout):
                m.eval()
        assert torch.allclose(net(x), ref(x), atol=1e-5)


def test_a_cyclegan_pair_converts_into_one_model_and_translates_both_ways(tmp_path):
    torch.manual_seed(0)
    ga, gb = ref_resnet(3, 3, 4, 2, "instance"), ref_resnet(3, 3, 4, 2, "instance")
    sa, sb = _randomise(ga, 3), _randomise(gb, 4)
    # pre-0.4 checkpoints carried running statistics in their instance norms: dropped as officially
    sa["model.2.running_mean"], sa["model.2.running_var"] = torch.zeros(4), torch.ones(4)
    torch.save({f"module.{k}": v for k, v in sa.items()}, tmp_path / "latest_net_G_A.pth")  # DataParallel prefix
    torch.save(sb, tmp_path / "latest_net_G_B.pth")
    model = convert_official(tmp_path / "latest_net_G_A.pth", tmp_path / "latest_net_G_B.pth")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model.translate(x, "AtoB"), ((ga.eval()(x * 2 - 1) + 1) / 2).clamp(0, 1), atol=1e-5)
        assert torch.allclose(model.translate(x, "BtoA"), ((gb.eval()(x * 2 - 1) + 1) / 2).clamp(0, 1), atol=1e-5)
    one = convert_official(tmp_path / "latest_net_G_A.pth")
    with pytest.raises(PixseqError, match="translates AtoB only.*no BtoA generator"):
        one.translate(x, "BtoA")


def test_another_architecture_is_refused_in_one_line(tmp_path):
    from pixseq.nn.conv import PatchDiscriminator

    torch.save(PatchDiscriminator(6, 4, 3).state_dict(), tmp_path / "latest_net_D.pth")
    with pytest.raises(PixseqError, match="not a pytorch-CycleGAN-and-pix2pix ResNet or U-Net generator"):
        convert_official(tmp_path / "latest_net_D.pth", kind="pix2pix")
    ga, gb = ref_resnet(3, 3, 4, 2, "instance"), ref_resnet(3, 3, 8, 2, "instance")
    torch.save(ga.state_dict(), tmp_path / "a.pth")
    torch.save(gb.state_dict(), tmp_path / "b.pth")
    with pytest.raises(PixseqError, match="different architectures"):
        convert_official(tmp_path / "a.pth", tmp_path / "b.pth")


def test_the_vintagify_generator_matches_its_own_network():
    vintagify = pytest.importorskip("vintagify.generator")
    from pixseq.gans.official import convert_vintagify, vintagify_weights

    model = convert_vintagify()
    ref = vintagify.ResnetGenerator()
    ref.load_state_dict(torch.load(vintagify_weights(), map_location="cpu", weights_only=True))
    assert model.config.generator.norm == "instance-affine" and model.directions == ["AtoB"]
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        assert torch.allclose(model.translate(x), ((ref.eval()(x * 2 - 1) + 1) / 2).clamp(0, 1), atol=1e-5)
        assert model.translate(torch.rand(1, 3, 30, 41)).shape == (1, 3, 30, 41)  # padded, cropped back


def test_fixed_norm_statistics_equal_whole_image_normalisation():
    """Tiles normalised with the whole image's statistics: the recorded statistics, applied
    to the same image, reproduce its output (float32 mean / var vs instance_norm's: 1e-5)."""
    torch.manual_seed(0)
    net = build_generator(GeneratorConfig(width=4, blocks=2, norm="instance-affine")).eval()
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad():
        whole = net(x)
        stats = record_norm_stats(net, lambda: net(x))
        with fixed_norm_stats(net, stats):
            again = net(x)
            crop = net(x[..., :12, :12])
        plain_crop = net(x[..., :12, :12])
    assert torch.allclose(again, whole, atol=1e-5)
    # a crop with the image's statistics differs from the crop normalised by its own
    assert not torch.allclose(crop, plain_crop, atol=1e-3)


def test_schedule_linear_matches_the_official_rule():
    """The official LambdaLR: ``1 - max(0, e + epoch_count - n) / (n_decay + 1)``, epoch_count 1."""
    from pixseq.train.schedule import constant_linear

    n, n_decay = 7, 5
    official = [1.0 - max(0, e + 1 - n) / float(n_decay + 1) for e in range(n + n_decay)]
    ours = [constant_linear(e, 0, n + n_decay, 0.0, n / (n + n_decay)) for e in range(n + n_decay)]
    assert np.allclose(ours, official)

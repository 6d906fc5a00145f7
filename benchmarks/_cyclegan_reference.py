"""The reference CycleGAN training step, plain PyTorch, written here from the definitions in
junyanz/pytorch-CycleGAN-and-pix2pix (``models/networks.py``: ``ResnetGenerator``,
``ResnetBlock``, ``NLayerDiscriminator``, ``GANLoss('lsgan')``, ``init_weights('normal', 0.02)``;
``util/image_pool.py``: ``ImagePool``; ``models/cycle_gan_model.py``: ``optimize_parameters``).
Nothing is imported from that repository (its full snapshot is too large to fetch here, and
its ``train.py`` needs its data folders, ``dominate`` and ``visdom``); this is the same
computation, call for call: six separate generator passes (fake, reconstruction and identity
per direction), ``set_requires_grad(D, False)`` for G's update, each D's real and detached
fake pass with ``(real + fake) * 0.5``, Adam 2e-4 / (0.5, 0.999) over both Gs and both Ds.
"""
from __future__ import annotations

import itertools
import random

import torch
from torch import nn


class ResnetBlock(nn.Module):
    """x + [reflect pad 1, conv 3x3, norm, ReLU, reflect pad 1, conv 3x3, norm]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


def resnet_generator(cin: int = 3, cout: int = 3, ngf: int = 64, n_blocks: int = 9) -> nn.Module:
    """``ResnetGenerator(norm='instance', use_dropout=False, padding_type='reflect')``: instance
    norm without affine parameters, so every conv has a bias."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7, bias=True), nn.InstanceNorm2d(ngf),
                               nn.ReLU(True)]
    for i in range(2):
        m = 2 ** i
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1, bias=True), nn.InstanceNorm2d(ngf * m * 2),
                   nn.ReLU(True)]
    layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
    for i in range(2):
        m = 2 ** (2 - i)
        layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1, bias=True),
                   nn.InstanceNorm2d(ngf * m // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def nlayer_discriminator(cin: int = 3, ndf: int = 64, n_layers: int = 3) -> nn.Module:
    """``NLayerDiscriminator(norm='instance')``: 4x4 convs, padding 1; the first without norm."""
    layers: list[nn.Module] = [nn.Conv2d(cin, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2 ** n, 8)
        stride = 2 if n < n_layers else 1
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=True), nn.InstanceNorm2d(ndf * mult),
                   nn.LeakyReLU(0.2, True)]
    layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
    return nn.Sequential(*layers)


def init_normal(net: nn.Module, gain: float = 0.02) -> nn.Module:
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


class ImagePool:
    """The official history buffer: fill to ``size``, then swap with probability 1/2."""

    def __init__(self, size: int = 50) -> None:
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for im in images:
            im = im.detach()[None]
            if len(self.images) < self.size:
                self.images.append(im)
                out.append(im)
            elif random.uniform(0, 1) > 0.5:
                j = random.randint(0, self.size - 1)
                out.append(self.images[j].clone())
                self.images[j] = im
            else:
                out.append(im)
        return torch.cat(out)


def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """``GANLoss('lsgan')``: MSE against a target of 1 (real) or 0 (fake) of the prediction's shape."""
    return nn.functional.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))


class ReferenceCycleGAN:
    """Networks, optimisers and pools; :meth:`step` is one ``optimize_parameters``."""

    def __init__(self, ngf: int = 64, ndf: int = 64, n_blocks: int = 9, lambda_a: float = 10.0,
                 lambda_b: float = 10.0, lambda_idt: float = 0.5) -> None:
        self.G_A, self.G_B = init_normal(resnet_generator(3, 3, ngf, n_blocks)), init_normal(resnet_generator(3, 3, ngf, n_blocks))
        self.D_A, self.D_B = init_normal(nlayer_discriminator(3, ndf)), init_normal(nlayer_discriminator(3, ndf))
        self.opt_G = torch.optim.Adam(itertools.chain(self.G_A.parameters(), self.G_B.parameters()), 2e-4, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), 2e-4, betas=(0.5, 0.999))
        self.pool_A, self.pool_B = ImagePool(), ImagePool()
        self.la, self.lb, self.li = lambda_a, lambda_b, lambda_idt

    @staticmethod
    def _requires_grad(nets, flag: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad = flag

    def _d(self, net, real, fake) -> torch.Tensor:
        loss = (lsgan(net(real), True) + lsgan(net(fake.detach()), False)) * 0.5
        loss.backward()
        return loss

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> float:
        fake_B = self.G_A(real_A)
        rec_A = self.G_B(fake_B)
        fake_A = self.G_B(real_B)
        rec_B = self.G_A(fake_A)
        self._requires_grad([self.D_A, self.D_B], False)
        self.opt_G.zero_grad()
        idt_A, idt_B = self.G_A(real_B), self.G_B(real_A)
        l1 = nn.functional.l1_loss
        loss_G = (lsgan(self.D_A(fake_B), True) + lsgan(self.D_B(fake_A), True)
                  + l1(rec_A, real_A) * self.la + l1(rec_B, real_B) * self.lb
                  + l1(idt_A, real_B) * self.lb * self.li + l1(idt_B, real_A) * self.la * self.li)
        loss_G.backward()
        self.opt_G.step()
        self._requires_grad([self.D_A, self.D_B], True)
        self.opt_D.zero_grad()
        self._d(self.D_A, real_B, self.pool_B.query(fake_B))
        self._d(self.D_B, real_A, self.pool_A.query(fake_A))
        self.opt_D.step()
        return float(loss_G.detach())

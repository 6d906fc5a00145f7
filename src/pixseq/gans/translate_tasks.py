"""pix2pix and CycleGAN as tasks of the one Trainer.

**pix2pix** (Isola et al. 2017): G maps A to B; a conditional 70x70 PatchGAN D sees ``(A, B)``
stacked on channels and tells real pairs from ``(A, G(A))``. G minimises the adversarial loss
plus ``lambda_l1 * |B - G(A)|_1`` (lambda 100); D minimises half the sum of its losses on real
and fake pairs (the official code's halving, "to slow down D"). Parts ``disc`` then ``gen``
on the same batch: G's image is made once, in D's part, and G's part backpropagates through it.

**CycleGAN** (Zhu et al. 2017): G: A -> B, F: B -> A, D_B judges B images, D_A judges A images.
G and F minimise ``L_GAN(G, D_B) + L_GAN(F, D_A) + lambda (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)
+ lambda_idt lambda (|G(b) - b|_1 + |F(a) - a|_1)`` with LSGAN (``(D(fake) - 1)^2``), lambda 10,
lambda_idt 0.5; each D minimises ``((D(real) - 1)^2 + D(fake)^2) / 2`` where ``fake`` comes
from a history of the last 50 generated images (:class:`ImagePool`, Shrivastava et al. 2017).
Parts ``gen`` then ``disc`` (the official order); the pools are modules with buffers, so
they are checkpointed and a resumed run continues exactly.

Both scale pixseq's losses (:mod:`pixseq.gans.losses`) to the official ones: the
non-saturating loss is the official ``vanilla`` (BCE), LSGAN's G loss is ``(D - 1)^2``
unhalved. While G's part runs, D's parameters do not require gradients (their gradient
would be computed and thrown away); images through the same instance-normalised network
go through it as one batch (instance norm is per image, so this is the same function).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from pixseq.gans.health import HealthMonitor
from pixseq.gans.losses import d_loss, d_outputs, g_loss
from pixseq.gans.tasks import TwoPartTask
from pixseq.gans.translator import Translator


def official_d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D's loss as the official code weighs it: half the real + fake terms (pixseq's LSGAN is halved already)."""
    loss = d_loss(kind, real, fake)
    return loss if kind == "lsgan" else 0.5 * loss


def official_g_loss(kind: str, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """G's adversarial loss as the official code weighs it (LSGAN: ``mean((D - 1)^2)``)."""
    loss = g_loss(kind, fake, real)
    return 2 * loss if kind == "lsgan" else loss


def _net(images: torch.Tensor, channels: int) -> torch.Tensor:
    """[0, 1] images -> the networks' [-1, 1] with ``channels`` channels (grey: the mean)."""
    x = images.mean(1, keepdim=True) if channels == 1 and images.size(1) == 3 else images
    return x * 2 - 1


class _Frozen:
    """Within the block ``module``'s parameters do not require gradients (those already in
    the autograd graph keep their edges: only what is built inside skips them)."""

    def __init__(self, module: nn.Module) -> None:
        self.params = [p for p in module.parameters() if p.requires_grad]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc) -> None:
        for p in self.params:
            p.requires_grad_(True)


def _per_image(module: nn.Module) -> bool:
    """Whether ``module`` treats every image of a batch alone (no batch norm in training)."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _pair(net: nn.Module, x: torch.Tensor, y: torch.Tensor, fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fn(x), fn(y))`` (``fn``: ``net`` itself by default), as one batch when that is the
    same function (``net`` treats every image alone)."""
    fn = fn or net
    if _per_image(net) and x.shape[1:] == y.shape[1:]:
        out = fn(torch.cat([x, y]))
        return out[: len(x)], out[len(x):]
    return fn(x), fn(y)


class _TranslationTask(TwoPartTask):
    """What the two tasks share beyond the GAN base: the translator, D(s), fixed sources."""

    def __init__(self, model: Translator, discs: dict[str, nn.Module], loss: str, fixed_sources: torch.Tensor,
                 d_lr_ratio: float = 1.0) -> None:
        super().__init__(loss, d_lr_ratio)
        self.model = self.g_module = model
        self.discs = discs
        self.fixed_sources = fixed_sources  # (N, 3, S, S) in [0, 1]: what health and image grids translate

    def modules(self) -> dict[str, nn.Module]:
        return {self.g_name: self.model, **self.discs}

    def parameters(self, part: str) -> Iterable[nn.Parameter]:
        if part == "gen":
            return self.model.parameters()
        return [p for d in self.discs.values() for p in d.parameters()]

    def compile_targets(self) -> list[nn.Module]:
        return [*self.model.generators.values(), *self.discs.values()]

    @torch.no_grad()
    def health_samples(self, num: int, seed: int = 0) -> torch.Tensor:
        """G applied to a fixed batch of training sources (a G whose output ignores its input
        shows as mode collapse)."""
        x = self.fixed_sources[:num].to(self.model.device)
        return self.model(x, "AtoB")

    @torch.no_grad()
    def sample_images(self, batch: dict, num: int = 8) -> torch.Tensor:
        """Rows: fixed sources, their translations (and for a CycleGAN the reconstructions)."""
        x = self.fixed_sources[:num].to(self.model.device)
        rows = [x.expand(-1, 3, -1, -1), self.model(x, "AtoB")]
        if "BtoA" in self.model.generators:
            rows.append(self.model(rows[1], "BtoA"))
        return torch.cat(rows)


class Pix2PixTask(_TranslationTask):
    """pix2pix: parts ``disc`` then ``gen``; logs ``d_loss``, D's outputs, ``g_adv``, ``l1``."""

    def __init__(self, model: Translator, disc: nn.Module, fixed_sources: torch.Tensor, loss: str = "ns",
                 lambda_l1: float = 100.0, adversarial: bool = True, d_lr_ratio: float = 1.0) -> None:
        # the L1-only baseline trains no D: none is checkpointed either
        super().__init__(model, {"disc": disc} if adversarial else {}, loss, fixed_sources, d_lr_ratio)
        self.lambda_l1, self.adversarial = float(lambda_l1), bool(adversarial)
        g = model.config.generator
        self.ca, self.cb = g.in_channels, g.out_channels

    def parts(self) -> list[str]:
        return ["disc", "gen"] if self.adversarial else ["gen"]

    def health_spec(self) -> dict | None:
        return super().health_spec() if self.adversarial else None  # no D: nothing to watch

    def _translate(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(A, real B, fake B) in the networks' range, fake B with its graph."""
        a = _net(batch["source"], self.ca)
        return a, _net(batch["image"], self.cb), self.model.run(a, "AtoB")

    def training_step(self, batch: dict, step: int, part: str) -> tuple[torch.Tensor, dict]:
        disc, key = self.discs.get("disc"), id(batch["image"])
        if part == "disc":
            a, real, fake = self._translate(batch)
            self._fake[key] = (a, real, fake)
            real_logits = disc(torch.cat([a, real], 1))
            fake_logits = disc(torch.cat([a, fake.detach()], 1))
            loss = official_d_loss(self.loss, real_logits, fake_logits)
            return loss, {"d_loss": loss.detach(), **d_outputs(self.loss, real_logits, fake_logits)}
        a, real, fake = self._fake.pop(key, None) or self._translate(batch)
        l1 = (fake - real).abs().mean() / 2  # on [0, 1] images, as the held-out L1
        logs = {"l1": l1.detach()}
        if not self.adversarial:
            return self.lambda_l1 * l1, logs
        with _Frozen(disc):
            fake_logits = disc(torch.cat([a, fake], 1))
            real_logits = disc(torch.cat([a, real], 1)) if self.loss == "ragan" else None
        adv = official_g_loss(self.loss, fake_logits, real_logits)
        logs["g_adv"] = adv.detach()
        # the official L1 is on [-1, 1] images: twice the [0, 1] one
        return adv + self.lambda_l1 * 2 * l1, logs

    @torch.no_grad()
    def eval_step(self, batch: dict) -> dict[str, float]:
        """Held-out translation against the true B: L1, PSNR (dB, peak 1), SSIM (standard)."""
        from pixseq.metrics.ssim import ssim

        fake = self.model(batch["source"], "AtoB")
        real = batch["image"]
        mse = (fake - real).pow(2).flatten(1).mean(1)
        psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
        return {"l1": float((fake - real).abs().mean()), "psnr_db": float(psnr.mean()),
                "ssim": float(ssim(fake.clamp(0, 1), real, reduction="mean"))}


class ImagePool(nn.Module):
    """The last ``size`` generated images (Shrivastava et al. 2017, as CycleGAN uses it): while
    it fills, images pass through and are stored; then each image is, with probability 1/2,
    swapped for a random stored one (which is returned), else returned as it is. Buffers, so
    the Trainer checkpoints them; draws from the global torch RNG (checkpointed too)."""

    def __init__(self, size: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.size = int(size)
        self.register_buffer("images", torch.zeros(self.size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for im in images:
            n = int(self.count)
            if n < self.size:
                self.images[n] = im
                self.count += 1
                out.append(im)
            elif bool(torch.rand(()) < 0.5):
                j = int(torch.randint(0, self.size, ()))
                out.append(self.images[j].clone())
                self.images[j] = im
            else:
                out.append(im)
        return torch.stack(out)


class CycleGANTask(_TranslationTask):
    """CycleGAN: parts ``gen`` then ``disc``; logs the adversarial, cycle and identity terms
    per direction, ``d_loss`` (the mean of both Ds' losses) and D's outputs."""

    def __init__(self, model: Translator, disc_a: nn.Module, disc_b: nn.Module, pools: dict[str, ImagePool],
                 fixed_sources: torch.Tensor, loss: str = "lsgan", lambda_cycle: float = 10.0,
                 lambda_identity: float = 0.5, d_lr_ratio: float = 1.0) -> None:
        super().__init__(model, {"disc_a": disc_a, "disc_b": disc_b}, loss, fixed_sources, d_lr_ratio)
        self.pools = pools
        self.lambda_cycle, self.lambda_identity = float(lambda_cycle), float(lambda_identity)
        g = model.config.generator
        self.ca, self.cb = g.in_channels, g.out_channels

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "pool_a": self.pools["a"], "pool_b": self.pools["b"]}

    def parts(self) -> list[str]:
        return ["gen", "disc"]

    def _generate(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        nets = self.model.generators
        G, F = (lambda x: self.model.run(x, "AtoB")), (lambda x: self.model.run(x, "BtoA"))  # noqa: E731
        identity = self.lambda_identity > 0 and self.ca == self.cb  # G(b) needs B to fit G's input
        if identity:
            fake_b, idt_b = _pair(nets["AtoB"], a, b, G)
            fake_a, idt_a = _pair(nets["BtoA"], b, a, F)
        else:
            fake_b, fake_a, idt_a, idt_b = G(a), F(b), None, None
        return {"fake_b": fake_b, "fake_a": fake_a, "rec_a": F(fake_b), "rec_b": G(fake_a),
                "idt_a": idt_a, "idt_b": idt_b}

    def _gen_loss(self, a: torch.Tensor, b: torch.Tensor, out: dict) -> tuple[torch.Tensor, dict]:
        with _Frozen(self.discs["disc_a"]), _Frozen(self.discs["disc_b"]):
            adv_b = official_g_loss(self.loss, self.discs["disc_b"](out["fake_b"]))
            adv_a = official_g_loss(self.loss, self.discs["disc_a"](out["fake_a"]))
        cyc_a, cyc_b = (out["rec_a"] - a).abs().mean(), (out["rec_b"] - b).abs().mean()
        total = adv_a + adv_b + self.lambda_cycle * (cyc_a + cyc_b)
        logs = {"g_adv": ((adv_a + adv_b) / 2).detach(), "g_adv_a": adv_a.detach(), "g_adv_b": adv_b.detach(),
                "cycle_a": cyc_a.detach(), "cycle_b": cyc_b.detach()}
        if out["idt_a"] is not None:
            idt_a, idt_b = (out["idt_a"] - a).abs().mean(), (out["idt_b"] - b).abs().mean()
            total = total + self.lambda_identity * self.lambda_cycle * (idt_a + idt_b)
            logs.update(idt_a=idt_a.detach(), idt_b=idt_b.detach())
        return total, logs

    def training_step(self, batch: dict, step: int, part: str) -> tuple[torch.Tensor, dict]:
        a, b = _net(batch["source"], self.ca), _net(batch["image"], self.cb)
        key = id(batch["image"])
        if part == "gen":
            out = self._generate(a, b)
            self._fake[key] = (out["fake_a"].detach(), out["fake_b"].detach())
            return self._gen_loss(a, b, out)
        fakes = self._fake.pop(key, None)
        if fakes is None:  # a task driven by disc alone
            with torch.no_grad():
                fakes = (self.model.run(b, "BtoA"), self.model.run(a, "AtoB"))
        logs, total = {}, 0.0
        for name, real, fake in (("a", a, fakes[0]), ("b", b, fakes[1])):
            real_logits, fake_logits = _pair(self.discs[f"disc_{name}"], real, self.pools[name].query(fake))
            loss = official_d_loss(self.loss, real_logits, fake_logits)
            total = total + loss
            logs[f"d_loss_{name}"] = loss.detach()
            logs.update({f"{k}_{name}": v for k, v in d_outputs(self.loss, real_logits, fake_logits).items()})
        logs["d_loss"] = total.detach() / 2
        return total, logs

    @torch.no_grad()
    def eval_step(self, batch: dict) -> dict[str, float]:
        """Held-out cycle reconstruction ``|F(G(a)) - a|``, ``|G(F(b)) - b|``, and how far each
        translation moves its input (``|G(a) - a|``: near 0 means G learned the identity),
        as mean absolute errors of [0, 1] images."""
        a, b = batch["source"], batch["image"]
        fake_b, fake_a = self.model(a, "AtoB"), self.model(b, "BtoA")
        rec_a, rec_b = self.model(fake_b, "BtoA"), self.model(fake_a, "AtoB")
        grey = lambda x, c: x.mean(1, keepdim=True) if c == 1 else x  # noqa: E731 - compare as the domain has it
        mae = lambda x, y, c: float((grey(x, c) - grey(y, c)).abs().mean())  # noqa: E731
        out = {"cycle_a": mae(rec_a, a, self.ca), "cycle_b": mae(rec_b, b, self.cb)}
        if self.ca == self.cb:
            out.update(change_a=mae(fake_b, a, self.ca), change_b=mae(fake_a, b, self.cb))
        return out


class TranslationHealth(HealthMonitor):
    """The part-1 health warnings plus, for a CycleGAN, the held-out cycle reconstruction:
    a warning when its error at a checkpoint exceeds ``rise`` x the best so far (and 0.02),
    or when a translation hardly changes its input (``eval/change_*`` below ``still``)."""

    def __init__(self, config=None, rise: float = 1.5, still: float = 0.005, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.rise, self.still = rise, still
        self.best: dict[str, float] = {}

    def extra_checks(self, trainer, step: int, record: dict) -> dict[str, str]:
        found = {}
        for side in ("a", "b"):
            value = record.get(f"eval/cycle_{side}")
            if value is None:
                continue
            best = self.best.get(side, value)
            if value > self.rise * best and value > 0.02:
                found[f"cycle_{side}"] = (f"the held-out cycle reconstruction error of {side.upper()} rose to "
                                          f"{value:.3g} (best {best:.3g})")
            self.best[side] = min(best, value)
            change = record.get(f"eval/change_{side}")
            if change is not None and change < self.still:
                found[f"still_{side}"] = (f"the {side.upper()} translation hardly changes its input (held-out mean "
                                          f"change {change:.3g}): G may have learned the identity")
        return found

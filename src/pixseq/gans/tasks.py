"""The GANs as tasks of the one Trainer: two parts each, ``"disc"`` then ``"gen"``.

Within a step both parts see the same real batch (the Trainer's contract). As in
pytorch/examples' dcgan, the generator's images are made once per micro-batch, in the
discriminator's part (which sees them detached), and the generator's part backpropagates
through that same forward pass. Latents and degradations are drawn from the global torch
RNG, which the Trainer checkpoints: a resumed run draws the same ones.

Logged per part (``disc/...``, ``gen/...`` in ``history.jsonl``): ``d_loss`` (the
adversarial part), ``d_real`` / ``d_fake`` (mean raw D outputs), ``p_real`` / ``p_fake``
(D(x) and D(G(z)) for sigmoid losses), ``gp`` / ``r1`` penalties, ``g_adv`` and, for
restoration, ``pixel`` (L1): what :mod:`pixseq.gans.health` watches.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from pixseq.gans.degrade import degrade
from pixseq.gans.losses import check_loss, d_loss, d_outputs, g_loss, gradient_penalty, r1_penalty
from pixseq.gans.model import GAN, Restorer, from_rgb


class _TwoPart:
    """What the GAN tasks share: parts, optimizer settings, the fakes kept between parts."""

    g_name = "generator"

    def __init__(self, loss: str, d_lr_ratio: float = 1.0, r1: float = 0.0) -> None:
        self.loss, self.d_lr_ratio, self.r1 = check_loss(loss), float(d_lr_ratio), float(r1)
        self._fake: dict[int, tuple] = {}

    def parts(self) -> list[str]:
        return ["disc", "gen"]

    def modules(self) -> dict[str, nn.Module]:
        return {self.g_name: self.g_module, "disc": self.disc}

    def parameters(self, part: str) -> Iterable[nn.Parameter]:
        return self.g_module.parameters() if part == "gen" else self.disc.parameters()

    def ema_modules(self) -> list[str]:
        return [self.g_name]  # the EMA of G is what is sampled; D's average serves nothing

    def optim_overrides(self, part: str) -> dict:
        # Radford et al.'s Adam settings; WGAN-GP's (Gulrajani et al.): beta1 0, beta2 0.9
        return {"betas": (0.0, 0.9) if self.loss == "wgan-gp" else (0.5, 0.999), "weight_decay": 0.0}

    def lr_scale(self, part: str) -> float:
        return self.d_lr_ratio if part == "disc" else 1.0

    def on_step_end(self, step: int) -> None:
        self._fake = {}  # the step's micro-batches are gone: their ids may be reused

    def health_spec(self) -> dict:
        """Names the health monitor reads (any two-part GAN task can give its own)."""
        return {"d_part": "disc", "g_part": "gen", "loss": self.loss}

    def _disc_loss(self, real_logits, fake_logits, real_in, fake_in, critic) -> tuple[torch.Tensor, dict]:
        loss = d_loss(self.loss, real_logits, fake_logits)
        logs = {"d_loss": loss.detach(), **d_outputs(self.loss, real_logits, fake_logits)}
        total = loss
        if self.loss == "wgan-gp":
            gp = gradient_penalty(critic, real_in, fake_in)
            total, logs["gp"] = total + gp, gp.detach()
        if self.r1 > 0:
            r1 = r1_penalty(real_logits, real_in, self.r1)
            total, logs["r1"] = total + r1, r1.detach()
        return total, logs


#: The two-part base under a public name, for GAN tasks of other families (ESRGAN's, in
#: :mod:`pixseq.upscale.train`).
TwoPartTask = _TwoPart


class GANTask(_TwoPart):
    """A generator from a latent and its discriminator (unconditional or class-conditional)."""

    def __init__(self, model: GAN, disc: nn.Module, loss: str = "ns", d_lr_ratio: float = 1.0,
                 r1: float = 0.0, evaluator=None) -> None:
        super().__init__(loss, d_lr_ratio, r1)
        self.model, self.disc, self.g_module = model, disc, model
        self.evaluator = evaluator  # held-out FID/KID of samples (pixseq.gans.evaluate.SampleEvaluator)

    def _inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = from_rgb(batch["image"], self.model.config.channels)
        labels = batch["label"] if self.model.num_classes else None
        return x, labels

    def training_step(self, batch: dict, step: int, part: str) -> tuple[torch.Tensor, dict]:
        x, labels = self._inputs(batch)
        key = id(batch["image"])
        if part == "disc":
            z = self.model.sample_latent(x.size(0))
            fake = self.model.generator(z, labels)  # kept with its graph for the generator's part
            self._fake[key] = fake
            real_in = x.requires_grad_(True) if self.r1 > 0 else x
            real_logits = self.disc(real_in, labels)
            fake_logits = self.disc(fake.detach(), labels)
            return self._disc_loss(real_logits, fake_logits, real_in, fake.detach(),
                                   lambda im: self.disc(im, labels))
        fake = self._fake.pop(key, None)
        if fake is None:  # a task driven by gen alone
            fake = self.model.generator(self.model.sample_latent(x.size(0)), labels)
        fake_logits = self.disc(fake, labels)
        real_logits = self.disc(x, labels) if self.loss == "ragan" else None
        loss = g_loss(self.loss, fake_logits, real_logits)
        return loss, {"g_adv": loss.detach()}

    def eval_step(self, batch: dict) -> dict[str, float]:
        """Held-out images go to the evaluator (their Inception features, once); its FID/KID
        of samples come from :meth:`eval_finish`."""
        if self.evaluator is not None:
            self.evaluator.add_real(batch["image"])
        return {}

    def eval_finish(self) -> dict[str, float]:
        return {} if self.evaluator is None else self.evaluator.score(self.model)

    @torch.no_grad()
    def health_samples(self, num: int, seed: int = 0) -> torch.Tensor:
        """``num`` samples from fixed latents (and labels cycling over the classes)."""
        g = torch.Generator(self.model.device).manual_seed(seed)
        labels = torch.arange(num) % self.model.num_classes if self.model.num_classes else None
        return self.model.generate(num, labels, generator=g)

    @torch.no_grad()
    def sample_images(self, batch: dict, num: int = 16) -> torch.Tensor:
        g = torch.Generator(self.model.device).manual_seed(0)  # the same latents at every logged step
        labels = torch.arange(num) % self.model.num_classes if self.model.num_classes else None
        return self.model.generate(num, labels, generator=g)


class RestoreTask(_TwoPart):
    """A restoration generator and its critic: ``pixel_weight * L1`` (alone during the first
    ``pretrain_steps``: the lecture's per-pixel pre-training) plus the adversarial loss."""

    def __init__(self, model: Restorer, disc: nn.Module, loss: str = "ns", pixel_weight: float = 100.0,
                 pretrain_steps: int = 0, d_lr_ratio: float = 1.0, r1: float = 0.0) -> None:
        super().__init__(loss, d_lr_ratio, r1)
        self.model, self.disc, self.g_module = model, disc, model
        self.pixel_weight, self.pretrain_steps = float(pixel_weight), int(pretrain_steps)

    def _restored(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["image"]
        degraded, mask = degrade(self.model.task, x, self.model.config.strength)
        return self.model(degraded, mask), x

    def training_step(self, batch: dict, step: int, part: str) -> tuple[torch.Tensor, dict]:
        key = id(batch["image"])
        adversarial = step >= self.pretrain_steps
        ch = self.model.config.channels
        if part == "disc":
            restored, x = self._restored(batch)
            self._fake[key] = (restored, x)
            if not adversarial:  # no gradient: AdamW skips the critic's parameters
                return x.new_zeros((), requires_grad=True), {}
            real_in = from_rgb(x, ch)
            real_in = real_in.requires_grad_(True) if self.r1 > 0 else real_in
            fake_in = from_rgb(restored.detach(), ch)
            return self._disc_loss(self.disc(real_in), self.disc(fake_in), real_in, fake_in, self.disc)
        restored, x = self._fake.pop(key, None) or self._restored(batch)
        pixel = (restored - x).abs().mean()
        logs = {"pixel": pixel.detach()}
        if not adversarial:
            return self.pixel_weight * pixel, logs
        fake_logits = self.disc(from_rgb(restored, ch))
        real_logits = self.disc(from_rgb(x, ch)) if self.loss == "ragan" else None
        adv = g_loss(self.loss, fake_logits, real_logits)
        logs["g_adv"] = adv.detach()
        return self.pixel_weight * pixel + adv, logs

    @torch.no_grad()
    def eval_step(self, batch: dict) -> dict[str, float]:
        """Held-out restoration of degradations drawn from a generator seeded by the batch's
        first index (the same pairs at every checkpoint): L1, MSE, PSNR (dB, peak 1) against
        the clean images, and the degraded input's PSNR for comparison."""
        x = batch["image"]
        g = torch.Generator(x.device).manual_seed(int(batch["index"][0]))
        degraded, mask = degrade(self.model.task, x, self.model.config.strength, generator=g)
        restored = self.model(degraded, mask)
        mse = (restored - x).pow(2).flatten(1).mean(1)
        base = degraded if degraded.size(1) == x.size(1) else degraded.expand_as(x)
        mse_in = (base - x).pow(2).flatten(1).mean(1)
        psnr = lambda m: float((10 * torch.log10(1.0 / m.clamp_min(1e-10))).mean())  # noqa: E731
        return {"l1": float((restored - x).abs().mean()), "mse": float(mse.mean()), "psnr_db": psnr(mse),
                "input_psnr_db": psnr(mse_in)}

    @torch.no_grad()
    def sample_images(self, batch: dict, num: int = 8) -> torch.Tensor:
        """Clean, degraded and restored images, one row each."""
        x = batch["image"][:num]
        degraded, mask = degrade(self.model.task, x, self.model.config.strength,
                                 generator=torch.Generator(x.device).manual_seed(0))
        shown = degraded.expand(-1, 3, -1, -1) if degraded.size(1) == 1 else degraded
        return torch.cat([x, shown, self.model(degraded, mask)])

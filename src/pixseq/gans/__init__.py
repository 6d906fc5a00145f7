"""The GAN family: generators from a latent (vanilla, DCGAN, class-conditional), image
restoration GANs, their losses, their tasks on the one Trainer and automatic health warnings.

* :mod:`pixseq.gans.dcgan` — G and D from a latent z (28/32/64 px, label channel);
* :mod:`pixseq.gans.restoration` — encoder-decoder G and critic for restoration;
* :mod:`pixseq.gans.losses` — ns, minimax, lsgan, hinge, wgan-gp, ragan; GP, R1, spectral norm;
* :mod:`pixseq.gans.degrade` — denoise / inpaint / colorize / superres pairs on the fly;
* :mod:`pixseq.gans.model` — the ``gan`` and ``restore`` model kinds;
* :mod:`pixseq.gans.tasks` — :class:`GANTask`, :class:`RestoreTask` (parts ``disc``, ``gen``);
* :mod:`pixseq.gans.health` — :class:`HealthMonitor` (D winning, oscillation, vanishing
  gradients, mode collapse);
* :mod:`pixseq.gans.evaluate` — FID / KID / IS of samples;
* :mod:`pixseq.gans.train` — the recipes ``build_gan`` / ``fit_gan`` / ``train_gan`` and
  ``build_restore`` / ``fit_restore`` / ``train_restore``.
"""

"""Batched random affine augmentation on the device: one random draw per image, one resample.

The original project's recipe (the repository this course started from) was torchvision's per-image
PIL pipeline::

    RandomRotation(5), RandomAffine(0, translate=(0.05, 0.05), scale=(0.95, 1.05)),
    GaussianBlur(3, sigma=(0.01, 0.02))

Rotation, translation and an isotropic scale compose into one affine map, so we resample once
with ``grid_sample`` for the whole batch. Translations are rounded to whole pixels, as
torchvision's ``RandomAffine`` does (up to 5% of 28 px -> -1, 0 or +1 px). The blur is left out:
a 3-tap Gaussian with sigma <= 0.02 has side weights exp(-1/(2 * 0.02**2)) = exp(-1250), which is
0.0 in float32, so it returns the image unchanged (a test checks this against torchvision).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEGREES = 5.0
TRANSLATE = 0.05  # fraction of the image size
SCALE = 0.05  # sizes from 1 - SCALE to 1 + SCALE


def affine_theta(angle: torch.Tensor, translate: torch.Tensor, scale: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 2, 3) matrices for ``F.affine_grid`` that match ``torchvision...functional.affine``.

    ``angle`` in degrees (N,), ``translate`` in pixels (N, 2) as (x, y), ``scale`` (N,).
    affine_grid wants the inverse map, output -> input, in coordinates normalised to [-1, 1].
    """
    rad = angle * (math.pi / 180.0)
    cos, sin = torch.cos(rad) / scale, torch.sin(rad) / scale
    inverse = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (N, 2, 2)
    shift = -(inverse @ translate.unsqueeze(-1)) / (size / 2)  # (N, 2, 1), in normalised units
    return torch.cat([inverse, shift], dim=-1)


def apply_affine(images: torch.Tensor, theta: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Resample (N, C, H, W) ``images`` through ``theta``; pixels from outside take the value ``fill``."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    out = F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill


def random_affine_params(n: int, *, size: int = 28, generator: torch.Generator | None = None, device=None,
                         degrees: float = DEGREES, translate: float = TRANSLATE, scale: float = SCALE):
    """Independent draws per image: angle in [-degrees, degrees], whole-pixel shift up to ``translate``
    of the image size, size factor in [1 - scale, 1 + scale] (defaults: 5 degrees, 5%, 0.95-1.05)."""
    def uniform(shape, low, high):
        return low + (high - low) * torch.rand(shape, generator=generator, device=device)

    angle = uniform((n,), -degrees, degrees)
    max_shift = translate * size
    shift = torch.round(uniform((n, 2), -max_shift, max_shift))
    factor = uniform((n,), 1 - scale, 1 + scale)
    return angle, shift, factor


def random_affine(images: torch.Tensor, *, fill: float = 0.0, generator: torch.Generator | None = None,
                  **ranges) -> torch.Tensor:
    """Augment a batch (N, C, H, W) on its own device, a fresh random draw for every image.
    ``ranges``: ``degrees``, ``translate``, ``scale`` as in :func:`random_affine_params`."""
    params = random_affine_params(images.shape[0], size=images.shape[-1], generator=generator, device=images.device,
                                  **ranges)
    return apply_affine(images, affine_theta(*params, size=images.shape[-1]), fill=fill)

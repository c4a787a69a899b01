"""Training and sampling of the conditional GAN: hinge loss, spectral norm, an EMA generator.

Why hinge + spectral norm: it trains stably here without the gradient penalty of
WGAN-GP, whose double backward pass costs 2-3x per step on a CPU. Real batches are
drawn class-balanced, so the rare classes (disgust: 436 faces) get as many
discriminator updates as the common ones; real and fake faces are randomly mirrored
before the discriminator sees them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from ferkit.data.labels import EMOTIONS
from ferkit.gan.models import Discriminator, Generator
from ferkit.models.ema import update_ema
from ferkit.runtime import keep_freed_memory, progress_disabled, resolve_device, resolve_precision
from ferkit.stopping import raise_if_stop_requested

StepCallback = Callable[[int, dict[str, float]], None]


class GANConfig(BaseModel):
    """Everything GAN training needs; configs set it on the oversampling step."""

    model_config = ConfigDict(extra="forbid")

    z_dim: int = Field(64, ge=2)  # noise dimensions
    width: int = Field(64, ge=4)  # channels of the widest generator block / 4
    steps: int = Field(3000, ge=1)  # generator updates
    batch_size: int = Field(64, ge=2)
    lr_generator: float = Field(2e-4, gt=0)
    lr_discriminator: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.0, 0.9)  # Adam, as usual for spectral-norm GANs
    ema_decay: float = Field(0.999, ge=0, lt=1)  # the generator kept for sampling is this EMA
    balanced: bool = True  # draw real batches class-balanced
    mirror: bool = True  # random horizontal flips before the discriminator
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "fp32"  # bf16 autocast; auto: where it pays (bf16_pays)
    channels_last: bool = False  # NHWC memory layout, faster convolutions on CPU
    device: str = "auto"
    num_threads: int | None = Field(None, ge=1)
    log_every: int = Field(100, ge=1)  # steps between callback calls


@dataclass
class GANResult:
    generator: Generator  # the EMA generator, in eval mode
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _mirror(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=generator, device="cpu") < 0.5
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)


class _RealBatches:
    """Batches of real faces in [0, 1] with their labels, drawn class-balanced when configured."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, config: GANConfig, rng: torch.Generator, device: torch.device
    ):
        self.data = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # uint8 on the device
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.present = sorted(set(self.labels.tolist()))
        self.by_class = {c: torch.nonzero(self.labels == c).flatten() for c in self.present}
        self.config, self.rng, self.device = config, rng, device

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        size, rng = self.config.batch_size, self.rng
        if self.config.balanced:
            ys = torch.tensor(self.present)[torch.randint(len(self.present), (size,), generator=rng)]
            idx = torch.stack(
                [self.by_class[int(c)][torch.randint(len(self.by_class[int(c)]), (1,), generator=rng)][0] for c in ys]
            )
        else:
            idx = torch.randint(len(self.labels), (size,), generator=rng)
        x = self.data[idx.to(self.device)].unsqueeze(1).float() / 255.0  # (B, 1, 48, 48)
        return x, self.labels[idx].to(self.device)


@dataclass
class _Nets:
    """The two networks, their optimizers and the generator's EMA copy."""

    g: Generator
    d: Discriminator
    ema: Generator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer

    @classmethod
    def build(cls, config: GANConfig, num_classes: int, device: torch.device) -> _Nets:
        netg = Generator(num_classes, config.z_dim, config.width).to(device)
        netd = Discriminator(num_classes, config.width).to(device)
        if config.channels_last:
            netg, netd = (netg.to(memory_format=torch.channels_last), netd.to(memory_format=torch.channels_last))
        return cls(
            netg,
            netd,
            copy.deepcopy(netg).eval(),
            torch.optim.Adam(netg.parameters(), lr=config.lr_generator, betas=config.betas),
            torch.optim.Adam(netd.parameters(), lr=config.lr_discriminator, betas=config.betas),
        )


def _hinge_step(
    nets: _Nets, real: torch.Tensor, y: torch.Tensor, config: GANConfig, rng: torch.Generator, device: torch.device
) -> tuple[float, float]:
    """One discriminator and one generator update on the hinge loss; returns both losses."""
    z = torch.randn(config.batch_size, config.z_dim, generator=rng).to(device)
    bf16 = resolve_precision(config.precision, device) == "bf16"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        fake = nets.g(z, y)
        if config.mirror:
            real, fake_d = _mirror(real, rng), _mirror(fake.detach(), rng)
        else:
            fake_d = fake.detach()
        d_loss = F.relu(1 - nets.d(real, y).float()).mean() + F.relu(1 + nets.d(fake_d, y).float()).mean()
    nets.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    nets.opt_d.step()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        fake_g = _mirror(fake, rng) if config.mirror else fake
        g_loss = -nets.d(fake_g, y).float().mean()
    nets.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    nets.opt_g.step()
    return d_loss.item(), g_loss.item()


def train_gan(
    images: np.ndarray,
    labels: np.ndarray,
    config: GANConfig,
    num_classes: int = len(EMOTIONS),
    callbacks: Sequence[StepCallback] = (),
    progress: bool = True,
) -> GANResult:
    """Fit a conditional GAN on uint8 faces (N, 48, 48) with labels in 0..num_classes-1."""
    if len(images) == 0:
        raise ValueError("no images to train the GAN on")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    keep_freed_memory()
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    device = resolve_device(config.device)
    nets = _Nets.build(config, num_classes, device)
    batches = _RealBatches(images, labels, config, rng, device)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    bar = tqdm(
        range(1, config.steps + 1),
        desc="gan",
        unit="step",
        mininterval=2.0,
        disable=not progress or progress_disabled(),
    )
    d_sum = g_sum = 0.0
    for step in bar:
        raise_if_stop_requested()
        d_loss, g_loss = _hinge_step(nets, *batches.draw(), config, rng, device)
        update_ema(nets.ema, nets.g, config.ema_decay, step)
        d_sum, g_sum = d_sum + d_loss, g_sum + g_loss
        if step % config.log_every == 0 or step == config.steps:
            n = step % config.log_every or config.log_every
            metrics = {"gan.d_loss": d_sum / n, "gan.g_loss": g_sum / n, "gan.seconds": time.perf_counter() - start}
            history.append({"step": step, **metrics})
            bar.set_postfix(d=f"{metrics['gan.d_loss']:.3f}", g=f"{metrics['gan.g_loss']:.3f}")
            for callback in callbacks:
                callback(step, metrics)
            d_sum = g_sum = 0.0
    ema = nets.ema.to(memory_format=torch.contiguous_format).eval()
    return GANResult(generator=ema, history=history, seconds=time.perf_counter() - start)


@torch.no_grad()
def generate(generator: Generator, labels: np.ndarray, seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """uint8 faces (N, 48, 48) for the given labels; the same seed gives the same faces."""
    generator.eval()
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    labels = np.asarray(labels, dtype=np.int64)
    out = []
    for start in range(0, len(labels), batch_size):
        y = torch.as_tensor(labels[start : start + batch_size], device=device)
        z = torch.randn(len(y), generator.z_dim, generator=rng).to(device)
        out.append((generator(z, y).squeeze(1) * 255).round().clamp(0, 255).to(torch.uint8).cpu())
    if not out:
        return np.zeros((0, 48, 48), dtype=np.uint8)
    return torch.cat(out).numpy()

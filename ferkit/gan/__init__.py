"""Conditional GAN oversampling of minority emotions: models, training, sampling."""

from ferkit.gan.models import Discriminator, Generator
from ferkit.gan.train import GANConfig, GANResult, generate, train_gan

__all__ = ["Discriminator", "GANConfig", "GANResult", "Generator", "generate", "train_gan"]

"""The paper's VAE and CVAE written in PyTorch, only as a yardstick for the benchmarks.

npvae itself never imports torch; this file is used when torch happens to be installed.
"""
import torch
import torch.nn.functional as F
from torch import nn


class TorchVAE(nn.Module):
    def __init__(self, latent_dim=2, condition_dim=0):
        super().__init__()
        self.latent_dim, self.condition_dim = latent_dim, condition_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1 + condition_dim, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(), nn.Flatten())
        self.fc_mu = nn.Linear(2048, latent_dim)
        self.fc_logvar = nn.Linear(2048, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim + condition_dim, 2048), nn.ReLU(), nn.Unflatten(1, (128, 4, 4)),
            nn.ConvTranspose2d(128, 64, 3, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, 2, 1))

    def _condition(self, x, onehot):
        if not self.condition_dim:
            return x
        planes = onehot[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return torch.cat([x, planes], 1)

    def encode(self, x, onehot=None):
        h = self.encoder(self._condition(x, onehot))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode_logits(self, z, onehot=None):
        return self.decoder(z if not self.condition_dim else torch.cat([z, onehot], 1))

    def forward(self, x, eps, onehot=None):
        mu, logvar = self.encode(x, onehot)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode_logits(z, onehot), mu, logvar


def torch_loss(logits, x, mu, logvar, beta=1.0):
    n = x.shape[0]
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / n
    return recon + beta * kl

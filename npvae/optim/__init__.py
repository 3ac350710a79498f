"""Optimisation: Adam (PyTorch's update) and the KL weight schedules of eq. 31."""
from .adam import Adam
from .schedules import SCHEDULES, kl_weight

__all__ = ["Adam", "SCHEDULES", "kl_weight"]

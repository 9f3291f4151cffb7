"""Engram N-gram addressing: the one address function of the project."""

from engram_sdk.hashing.config import DEAD_ID, NgramConfig
from engram_sdk.hashing.hasher import NgramHasher, layer_multipliers
from engram_sdk.hashing.primes import head_primes, is_prime

__all__ = ["DEAD_ID", "NgramConfig", "NgramHasher", "head_primes", "is_prime", "layer_multipliers"]

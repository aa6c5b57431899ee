"""Rendezvous hashing, as the core uses it (seed placement): see :mod:`scheduler.rendezvous`."""

from __future__ import annotations

from ..rendezvous import rendezvous_owner, rendezvous_weight

__all__ = ["rendezvous_owner", "rendezvous_weight"]

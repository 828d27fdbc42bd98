"""The local backend: workloads as supervised processes on this machine."""

from .backend import LocalBackend

__all__ = ["LocalBackend"]

"""Device and dtype choice — the one place that decides where tensors live.

Everything else asks this module (``resolve_device``, ``prior_dtype``) instead of testing
``torch.cuda.is_available()`` itself, so moving jobs to other GPUs (e.g. one Ray worker per device)
only changes the string handed in here.
"""

from __future__ import annotations

import torch


def resolve_device(preference: str = "auto") -> torch.device:
    """Turn a user preference (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``) into a torch device.

    Raises ``ValueError`` naming the problem when the requested device is not usable here.
    """
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError as e:
        raise ValueError(f"unknown device {preference!r}: use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} requested but CUDA is not available here: use --device cpu")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {preference!r} requested but MPS is not available here: use --device cpu")
    return dev


def prior_dtype(device: torch.device) -> torch.dtype:
    """Weights dtype for frozen diffusion priors: fp16 on CUDA (memory, speed), fp32 elsewhere (CPU fp16 is slow)."""
    return torch.float16 if device.type == "cuda" else torch.float32


def describe(device: torch.device) -> str:
    """Human-readable device name for logs and the server's health endpoint."""
    if device.type == "cuda":
        return f"GPU ({torch.cuda.get_device_name(device)})"
    return device.type.upper()


def worker_devices(preference: str = "auto") -> list[torch.device]:
    """The devices a job server runs one worker each on: every CUDA GPU for ``auto`` (the CPU if there is
    none), otherwise the one device asked for."""
    pref = (preference or "auto").strip().lower()
    if pref == "auto" and torch.cuda.is_available():
        return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return [resolve_device(preference)]


def auxiliary_device() -> torch.device:
    """Where small helper copies of models live (e.g. a prior's tokenizer for checking prompts on submit):
    the CPU, so they never take accelerator memory from the workers."""
    return torch.device("cpu")

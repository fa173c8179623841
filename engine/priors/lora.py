"""ε_ψ for ESD / VSD: the prior's own UNet with a LoRA adapter and a learned camera embedding.

ProlificDreamer (VSD) and ESD fit a second diffusion model to the renders of the current 3D scene,
initialised from the prior and parameterised by LoRA. Here it *shares* the prior's frozen UNet: peft
injects low-rank adapters into the attention projections of :attr:`DiffusionPrior.unet`, and they are
switched on only for the duration of an ε_ψ call. Outside that call the adapters are disabled, and a
disabled peft layer computes exactly ``base_layer(x)``, so the prior (ε_φ) is bitwise what it was.

The camera c (a camera-to-world matrix, flattened to 16 numbers) enters through a small MLP whose
output is added to the UNet's time embedding, as ProlificDreamer does with diffusers' class
embedding. A forward hook on ``unet.time_embedding`` adds it, registered only during the ε_ψ call:
setting ``unet.class_embedding`` instead would change the shared UNet for every caller (diffusers then
requires ``class_labels`` on each call), and the hook works whatever class embedding a UNet has.
"""

from __future__ import annotations

import itertools
import warnings
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

if TYPE_CHECKING:
    from engine.priors.base import DiffusionPrior

LORA_TARGETS: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
"""Attention projections that get LoRA adapters (self- and cross-attention, as in ProlificDreamer)."""

_names = itertools.count()


class CameraEmbedding(nn.Module):
    """c2w (B, 4, 4) → flattened → Linear → SiLU → Linear → (B, D), added to the UNet's time embedding.

    The last layer starts at zero, so a new ε_ψ predicts exactly what the LoRA-adapted UNet predicts
    without a camera (and, with LoRA's zero-initialised B, exactly ε_φ(x_t, t, y)).
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, hidden), nn.SiLU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, c2w: Float[Tensor, "B 4 4"]) -> Float[Tensor, "B D"]:
        return self.net(c2w.reshape(c2w.shape[0], 16).float())


class LoRADenoiser(nn.Module):
    """ε_ψ(x_t, t, c, y): the prior's UNet + a LoRA adapter (rank ``rank``) + a camera embedding.

    Its parameters (``parameters()``, ``state_dict()``) are exactly the trainable ones: the adapter's
    LoRA matrices (the same tensors peft placed inside the UNet, keyed without the adapter's run-specific
    name) and the camera MLP. Create it as ``LoRADenoiser(prior, rank, camera_hidden)``.
    """

    def __init__(
        self,
        prior: DiffusionPrior,
        rank: int = 4,
        camera_hidden: int = 64,
        targets: Sequence[str] = LORA_TARGETS,
    ):
        super().__init__()
        from peft import LoraConfig

        if rank < 1:
            raise ValueError(f"the LoRA rank must be >= 1 (got {rank})")
        self.prior = prior  # a plain object, not a submodule: the frozen UNet's weights are not ours
        unet = prior.unet
        self.adapter = f"esd_lora_{next(_names)}"
        with warnings.catch_warnings():
            # peft warns when a model gets a second adapter; several ε_ψ on one prior is intended (tests).
            warnings.filterwarnings("ignore", message=".*multiple adapters.*")
            unet.add_adapter(
                LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets), init_lora_weights=True),
                adapter_name=self.adapter,
            )
        unet.disable_adapters()  # the prior stays the prior until an ε_ψ call switches this adapter on
        marker = f".{self.adapter}."
        lora = {}
        for name, p in unet.named_parameters():
            if "lora_" in name and marker in name:
                if p.dtype in (torch.float16, torch.bfloat16):
                    p.data = p.data.float()  # train in fp32; peft casts activations to the adapter's dtype
                lora[name.replace(marker, ".").replace(".", "/")] = p  # ParameterDict keys cannot hold "."
        if not lora:
            raise ValueError(
                f"{prior.name}: the UNet has no attention projections named {', '.join(targets)}"
            )
        self.lora = nn.ParameterDict(lora)
        self._keep_trainable()
        self.camera = CameraEmbedding(unet.time_embedding.linear_2.out_features, camera_hidden).to(
            prior.device
        )
        # Drop the adapter from the shared UNet when this ε_ψ goes away (e.g. the next run on a cached prior).
        weakref.finalize(self, _delete_adapter, weakref.ref(unet), self.adapter)

    @contextmanager
    def _active(self, emb: Float[Tensor, "B D"] | None) -> Iterator[None]:
        """Within the block the shared UNet is ε_ψ: this adapter on, ``emb`` added to the time embedding."""
        unet = self.prior.unet
        unet.set_adapter(self.adapter)  # also marks only this adapter trainable (peft)
        unet.enable_adapters()
        hook = None
        if emb is not None:
            hook = unet.time_embedding.register_forward_hook(lambda _m, _a, out: out + emb.to(out.dtype))
        try:
            yield
        finally:
            if hook is not None:
                hook.remove()
            unet.disable_adapters()
            self._keep_trainable()

    def _keep_trainable(self) -> None:
        # peft's disable_adapters (and set_adapter of another adapter) also turns requires_grad off, but
        # ε_ψ's loss is backpropagated after the call, and a leaf with requires_grad off gets no gradient.
        # A disabled adapter is not evaluated at all, so keeping the flag on does not touch the prior.
        for p in self.lora.values():
            p.requires_grad_(True)

    def predict_noise(
        self,
        z_t: Float[Tensor, "B C h w"],
        t: Int[Tensor, " B"],
        text_embeddings: Float[Tensor, "B S D"],
        camera: Float[Tensor, "B 4 4"] | None = None,
        drop_camera: Bool[Tensor, " B"] | None = None,
        *,
        grad: bool = False,
    ) -> Float[Tensor, "B C h w"]:
        """ε_ψ(z_t, t, c, y) (float32), or ε_ψ(z_t, t, ∅, y) where the camera is dropped.

        Args:
            camera: camera-to-world matrices; None drops the camera of every row.
            drop_camera: rows whose camera is dropped (∅: nothing is added to their time embedding).
            grad: autograd on, to train the LoRA and the camera MLP.
        """
        emb = None
        if camera is not None:
            if camera.shape != (z_t.shape[0], 4, 4):
                raise ValueError(
                    f"camera must be ({z_t.shape[0]}, 4, 4) c2w matrices, got {tuple(camera.shape)}"
                )
            with torch.set_grad_enabled(grad):
                emb = self.camera(camera.to(self.prior.device))
                if drop_camera is not None:
                    emb = emb * (~drop_camera).to(device=emb.device, dtype=emb.dtype)[:, None]
        with self._active(emb):
            return self.prior.predict_noise(z_t, t, text_embeddings, grad=grad)

    forward = predict_noise


def _delete_adapter(unet_ref: weakref.ref, name: str) -> None:
    unet = unet_ref()
    if unet is not None:
        with warnings.catch_warnings():  # "adapter was active, now deleted": expected, ε_ψ is gone
            warnings.simplefilter("ignore")
            unet.delete_adapters(name)

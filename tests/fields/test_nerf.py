"""The NeRF field's coarse-to-fine schedule: which hash-grid levels are active, and that masked levels learn nothing."""

from __future__ import annotations

import pytest
import torch

from engine.fields.hashgrid import HashGridConfig
from engine.fields.nerf import CoarseToFine, FieldConfig


def test_schedule_adds_levels_evenly_until_the_given_fraction():
    c = CoarseToFine(start_levels=4, until=0.5)
    assert [c.active_levels(12, s, 100) for s in (0, 10, 25, 49, 50, 99)] == [4, 5, 8, 11, 12, 12]
    assert CoarseToFine(start_levels=0).active_levels(12, 0, 100) == 12  # off


def test_masked_levels_output_zero_and_get_no_gradient():
    cfg = FieldConfig(
        grid=HashGridConfig(n_levels=6, log2_hashmap_size=12, max_resolution=64, compile=False),
        coarse_to_fine=CoarseToFine(start_levels=2, until=0.5),
    )
    field = cfg.setup("cpu")
    field.set_progress(0, 100)
    x = torch.rand(500, 3) * 1.6 - 0.8
    h = field._encode(x)
    f = cfg.grid.n_features_per_level
    assert h[:, 2 * f :].abs().max() == 0 and h[:, : 2 * f].abs().max() > 0
    field.density(x).sum().backward()
    grads = field.encoding.embeddings.grad
    assert grads[2:].abs().max() == 0 and grads[:2].abs().max() > 0
    field.set_progress(100, 100)
    assert field.active_levels == 6 and field._encode(x)[:, -f:].abs().max() > 0


def test_bad_schedule_is_refused():
    with pytest.raises(ValueError, match="start_levels must be >= 0"):
        CoarseToFine(start_levels=-1).validate()
    with pytest.raises(ValueError, match=r"coarse_to_fine.until must be in \[0, 1\]"):
        FieldConfig(coarse_to_fine=CoarseToFine(until=2.0)).validate()


def test_sdf_density_starts_as_the_blob_sphere():
    """Geometric initialisation: d ≈ ‖x‖ − r_blob, so σ = Ψ_β(−d)/β is 1/(2β) on that sphere."""
    from engine.fields.nerf import laplace_density

    cfg = FieldConfig(
        grid=HashGridConfig(n_levels=4, log2_hashmap_size=10, max_resolution=32, compile=False), density="sdf"
    )
    field = cfg.setup("cpu")
    x = torch.nn.functional.normalize(torch.randn(200, 3), dim=-1)
    inside, outside = field.density(0.1 * x), field.density(0.9 * x)
    beta = cfg.sdf_beta
    assert (inside > 0.9 / beta).all() and (outside < 1e-3).all()
    # The MLP head starts small but not zero: the zero level stays near the blob's sphere.
    assert torch.allclose(field.sdf(cfg.blob_radius * x), torch.zeros(200), atol=0.3)
    assert laplace_density(torch.zeros(1), beta) == pytest.approx(0.5 / beta)
    assert laplace_density(torch.tensor([-5.0]), beta) == pytest.approx(1 / beta)

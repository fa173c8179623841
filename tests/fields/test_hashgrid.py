"""The pure-torch hash grid against the plain reference: values, table gradients, layouts, fallbacks."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from engine.configbase import field_docs
from engine.fields import hashgrid_torch
from engine.fields.hashgrid import HashGridConfig, TorchHashGrid, level_resolutions
from tests.fields.reference_hashgrid import reference_encode

# Small grids that cover each indexing case; T is tiny so hashed levels have many collisions.
CONFIGS = {
    "mixed": HashGridConfig(n_levels=4, log2_hashmap_size=10, base_resolution=4, max_resolution=40),
    "dense_only": HashGridConfig(n_levels=3, log2_hashmap_size=14, base_resolution=2, max_resolution=16),
    "hashed_only": HashGridConfig(n_levels=3, log2_hashmap_size=8, base_resolution=16, max_resolution=64),
    "one_feature": HashGridConfig(n_levels=3, n_features_per_level=1, log2_hashmap_size=9, max_resolution=32),
    "four_features": HashGridConfig(
        n_levels=3, n_features_per_level=4, log2_hashmap_size=9, max_resolution=32
    ),
    "one_level": HashGridConfig(n_levels=1, log2_hashmap_size=9, base_resolution=12, max_resolution=12),
    # (N_max + 1) · T >= 2^31: the row arithmetic must switch to int64.
    "int64_rows": HashGridConfig(
        n_levels=2, n_features_per_level=1, log2_hashmap_size=22, base_resolution=600, max_resolution=1024
    ),
}


def make_grid(cfg: HashGridConfig, *, compile: bool = False, seed: int = 0) -> TorchHashGrid:
    """A grid with O(1) table entries, so that value comparisons are meaningful."""
    torch.manual_seed(seed)
    grid = dataclasses.replace(cfg, implementation="torch", compile=compile).setup("cpu")
    assert isinstance(grid, TorchHashGrid)
    with torch.no_grad():
        grid.embeddings.normal_()
    return grid


def sample_points(n_random: int = 300, seed: int = 1) -> torch.Tensor:
    """Random points plus the awkward ones: cube corners, faces, exact vertices, and strays outside the box."""
    gen = torch.Generator().manual_seed(seed)
    cube_corners = torch.tensor([[i, j, k] for i in (0.0, 1.0) for j in (0.0, 1.0) for k in (0.0, 1.0)])
    faces = torch.rand(12, 3, generator=gen)
    faces[torch.arange(12), torch.arange(12) % 3] = (torch.arange(12) % 2).float()
    vertices = torch.randint(0, 17, (8, 3), generator=gen).float() / 16.0
    strays = torch.tensor([[-0.25, 0.5, 0.5], [0.5, 1.5, 0.5], [1.0 + 1e-6, -1e-6, 0.3]])
    return torch.cat([torch.rand(n_random, 3, generator=gen), cube_corners, faces, vertices, strays])


def encode_and_grad(grid: TorchHashGrid, encode, x: torch.Tensor, upstream: torch.Tensor):
    grid.embeddings.grad = None
    out = encode(x)
    (out * upstream).sum().backward()
    return out.detach(), grid.embeddings.grad.clone()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_reference(name: str) -> None:
    grid = make_grid(CONFIGS[name])
    x = sample_points()
    upstream = torch.randn(x.shape[0], grid.out_dim, generator=torch.Generator().manual_seed(2))
    out, grad = encode_and_grad(grid, grid, x, upstream)
    ref_out, ref_grad = encode_and_grad(grid, lambda p: reference_encode(grid, p), x, upstream)
    assert out.dtype == torch.float32 and out.shape == (x.shape[0], grid.out_dim)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grad, ref_grad, atol=1e-5, rtol=1e-5)


def test_level_kinds_and_index_width() -> None:
    mixed = make_grid(CONFIGS["mixed"])
    assert mixed.resolutions == [4, 8, 18, 40]
    assert mixed.n_dense == 2  # 9^3 <= 1024 < 19^3
    assert mixed._stride.dtype == torch.int32
    assert make_grid(CONFIGS["int64_rows"])._stride.dtype == torch.int64


def test_default_resolutions_reach_both_ends() -> None:
    res = level_resolutions(HashGridConfig())
    assert res[0] == 16 and res[-1] == 1024
    assert res == sorted(res) and len(res) == 16


def test_out_dim_and_input_handling() -> None:
    cfg = CONFIGS["four_features"]
    grid = make_grid(cfg)
    assert grid.out_dim == cfg.n_levels * cfg.n_features_per_level == 12
    x = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    out = grid(x)
    assert out.dtype == torch.float32 and out.shape == (5, 12)
    out.sum().backward()
    assert x.grad is None  # gradients go to the table only
    assert grid(torch.zeros(0, 3)).shape == (0, 12)
    assert torch.isfinite(grid(torch.tensor([[float("nan"), 0.5, float("inf")]]))).all()
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        grid(torch.rand(4, 2))


def test_unused_dense_rows_get_no_gradient() -> None:
    grid = make_grid(CONFIGS["dense_only"])
    grid(torch.rand(200, 3)).sum().backward()
    for level, res in enumerate(grid.resolutions):
        assert grid.embeddings.grad[level, (res + 1) ** 3 :].abs().sum() == 0


def test_deterministic() -> None:
    a, b = make_grid(CONFIGS["mixed"], seed=3), make_grid(CONFIGS["mixed"], seed=3)
    assert torch.equal(a.embeddings, b.embeddings)
    x, up = sample_points(), torch.randn(sample_points().shape[0], a.out_dim)
    out1, grad1 = encode_and_grad(a, a, x, up)
    out2, grad2 = encode_and_grad(a, a, x, up)
    assert torch.equal(out1, out2) and torch.equal(grad1, grad2)


def test_default_init_scale() -> None:
    grid = HashGridConfig(n_levels=2, log2_hashmap_size=8, init_scale=1e-4, implementation="torch").setup()
    assert grid.embeddings.shape == (2, 256, 2)
    assert grid.embeddings.abs().max() <= 1e-4
    assert [name for name, _ in grid.named_parameters()] == ["embeddings"]
    assert list(grid.state_dict()) == ["embeddings"]


def test_chunked_eager_matches_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = make_grid(CONFIGS["mixed"])
    x = sample_points()
    up = torch.randn(x.shape[0], grid.out_dim)
    whole = encode_and_grad(grid, grid, x, up)
    monkeypatch.setattr(hashgrid_torch, "_CHUNK", 64)
    chunked = encode_and_grad(grid, grid, x, up)
    torch.testing.assert_close(chunked[0], whole[0], atol=0, rtol=0)
    torch.testing.assert_close(chunked[1], whole[1], atol=1e-6, rtol=1e-6)


def test_compile_failure_falls_back_to_eager(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(hashgrid_torch, "_KERNELS", hashgrid_torch._Kernels())
    monkeypatch.setattr(torch, "compile", broken_compile)
    grid = make_grid(CONFIGS["mixed"], compile=True)
    eager = make_grid(CONFIGS["mixed"], compile=False)
    x = sample_points()
    with caplog.at_level(logging.WARNING, logger=hashgrid_torch.__name__):
        out = grid(x)
        grid(x).sum().backward()
    torch.testing.assert_close(out, eager(x), atol=0, rtol=0)
    assert len(caplog.records) == 1 and "no C++ compiler here" in caplog.records[0].getMessage()


def test_tcnn_needs_cuda() -> None:
    with pytest.raises(ValueError, match="tiny-cuda-nn"):
        HashGridConfig(implementation="tcnn").setup("cpu")


def test_auto_on_cpu_is_torch() -> None:
    grid = HashGridConfig(n_levels=2, log2_hashmap_size=8).setup("cpu")
    assert isinstance(grid, TorchHashGrid)


@pytest.mark.parametrize(
    "bad",
    [
        {"n_levels": 0},
        {"n_features_per_level": 0},
        {"log2_hashmap_size": 40},
        {"base_resolution": 64, "max_resolution": 32},
        {"implementation": "cuda"},
    ],
)
def test_invalid_config(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):  # the message names the setting
        HashGridConfig(**bad).setup("cpu")


def test_every_setting_is_documented() -> None:
    docs = field_docs(HashGridConfig)
    assert set(docs) == {f.name for f in dataclasses.fields(HashGridConfig)}


@pytest.mark.slow
def test_compiled_matches_eager() -> None:
    """The one test that pays for a cold torch.compile (~15 s on 2 cores)."""
    cfg = CONFIGS["mixed"]
    compiled, eager = make_grid(cfg, compile=True), make_grid(cfg, compile=False)
    for n in (300, 517):  # a second batch size must reuse the graph (the points dim is dynamic)
        x = torch.cat([sample_points(n), torch.rand(n, 3)])
        up = torch.randn(x.shape[0], compiled.out_dim)
        out_c, grad_c = encode_and_grad(compiled, compiled, x, up)
        if hashgrid_torch._KERNELS.failed:
            pytest.skip("torch.compile does not work on this machine; the eager path is tested above")
        out_e, grad_e = encode_and_grad(eager, eager, x, up)
        torch.testing.assert_close(out_c, out_e, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(grad_c, grad_e, atol=1e-5, rtol=1e-5)

"""The optimisation loop: learning on a fixed target, SDS with a tiny prior, resume, determinism, NaN."""

import threading

import pytest
import torch

from engine.cameras import turntable
from engine.config import build_config
from engine.fields.hashgrid import HashGridConfig
from engine.fields.nerf import FieldConfig
from engine.priors.pixel import PixelPriorConfig
from engine.render.renderer import RendererConfig, Shading
from engine.train import Callbacks, Trainer, TrainingDiverged

SMALL_GRID = {
    "field.grid.n_levels": 8,
    "field.grid.log2_hashmap_size": 14,
    "field.grid.max_resolution": 128,
    "field.grid.compile": False,
}


@pytest.fixture(scope="module")
def prior(tiny_pixel_prior_dir):
    return PixelPriorConfig(str(tiny_pixel_prior_dir)).setup("cpu")


PRIOR_DIR: list[str] = []
"""The tiny prior's folder, for :func:`small_config` (configs name their prior; it is resolved, not loaded)."""


@pytest.fixture(autouse=True, scope="module")
def _tiny_prior_folder(tiny_pixel_prior_dir):
    PRIOR_DIR[:] = [str(tiny_pixel_prior_dir)]


def small_config(steps=12, method="sds", **extra):
    overrides = {
        **SMALL_GRID,
        "train.steps": steps,
        "train.render_size": 16,
        "renderer.n_samples": 24,
        "train.checkpoint_every": 5,
        "train.preview_every": 4,
        "train.preview_size": 16,
        "renderer.shading_start_step": 3,
        "export.resolution": 32,
        **extra,
    }
    return build_config("a red cube", method=method, prior=PRIOR_DIR[0], overrides=overrides)


def test_field_and_renderer_learn_a_fixed_target():
    """Plain L2 to images of a red ball seen from 4 sides: the loss must fall a lot in a few hundred steps."""
    from tests.render.test_renderer import Ball

    torch.manual_seed(0)
    target_field = Ball(sigma=30.0, radius=0.45, albedo=(0.9, 0.1, 0.1))
    renderer = RendererConfig(n_samples=32).setup(1.0)
    renderer.occupancy_grid.cfg.enabled = False
    cams = turntable(4, elevation=20.0)
    with torch.no_grad():
        target = renderer.render(target_field, cams, 24, perturb=False).rgb
    field = FieldConfig(
        grid=HashGridConfig(n_levels=8, log2_hashmap_size=14, max_resolution=128, compile=False)
    ).setup()
    opt = torch.optim.Adam(
        [
            {"params": field.param_groups()["grid"], "lr": 1e-2},
            {"params": field.param_groups()["mlp"], "lr": 1e-2},
        ],
        eps=1e-15,
    )
    gen = torch.Generator().manual_seed(0)
    losses = []
    for step in range(300):
        i = step % 4
        out = renderer.render(field, cams[i], 24, generator=gen)
        loss = ((out.rgb - target[i : i + 1]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.1 * first, (first, last)
    assert last < 2e-3


def test_sds_run_checkpoints_resumes_exactly_and_writes_a_mesh(prior, tmp_path):
    from engine.export.mesh import extract_mesh, write_glb

    previews, progress = [], []
    cb = Callbacks(on_progress=progress.append, on_preview=lambda s, img: previews.append((s, img.shape)))
    full = Trainer(small_config(), prior, tmp_path / "full", cb)
    assert full.run().status == "finished"
    assert [p.step for p in progress] == list(range(1, 13))
    assert progress[-1].eta_s == pytest.approx(0.0) and progress[0].its > 0
    assert [s for s, _ in previews] == [4, 8, 12] and previews[0][1] == (16, 16, 3)

    # Stop after 6 steps (cancel), reload in a fresh trainer, finish: same parameters as the straight run.
    cancel = threading.Event()
    stopper = Callbacks(on_progress=lambda p: cancel.set() if p.step == 6 else None)
    part = Trainer(small_config(), prior, tmp_path / "part", stopper)
    res = part.run(cancel)
    assert res.status == "cancelled" and res.step == 6
    resumed = Trainer(small_config(), prior, tmp_path / "part")
    assert resumed.load_checkpoint() == 6
    assert resumed.run().status == "finished"
    for (name, a), b in zip(full.field.state_dict().items(), resumed.field.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name

    mesh = extract_mesh(resumed.field, small_config().export)
    assert len(mesh.faces) > 0
    write_glb(mesh, tmp_path / "out.glb")
    assert (tmp_path / "out.glb").read_bytes()[:4] == b"glTF"


def test_previews_paced_by_time_start_after_the_first_step(prior, tmp_path):
    """A live view on any hardware: with ``preview_seconds`` the first preview comes after step 1 and then
    by the clock (here: never again within the run), besides the step-paced ones."""
    previews = []
    cb = Callbacks(on_preview=lambda s, img: previews.append(s))
    cfg = small_config(steps=6, **{"train.preview_every": 0, "train.preview_seconds": 3600.0})
    assert Trainer(cfg, prior, tmp_path / "hour", cb).run().status == "finished"
    assert previews == [1]
    previews.clear()
    cfg = small_config(steps=6, **{"train.preview_every": 4, "train.preview_seconds": 1e-9})
    assert Trainer(cfg, prior, tmp_path / "always", cb).run().status == "finished"
    assert previews == [1, 2, 3, 4, 5, 6]  # every step is "due" by the clock


def test_esd_run_resumes_exactly_with_its_eps_psi(prior, tmp_path):
    """ESD's state (LoRA, camera MLP, their AdamW) is checkpointed: stop + resume = a straight run."""
    full = Trainer(small_config(steps=8, method="esd"), prior, tmp_path / "full")
    assert full.run().status == "finished"
    cancel = threading.Event()
    stopper = Callbacks(on_progress=lambda p: cancel.set() if p.step == 4 else None)
    assert (
        Trainer(small_config(steps=8, method="esd"), prior, tmp_path / "part", stopper).run(cancel).step == 4
    )
    resumed = Trainer(small_config(steps=8, method="esd"), prior, tmp_path / "part")
    assert resumed.load_checkpoint() == 4
    assert resumed.run().status == "finished"
    for (name, a), b in zip(full.field.state_dict().items(), resumed.field.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    psi_full, psi_resumed = full.guidance.state_dict(), resumed.guidance.state_dict()
    for name, a in psi_full["eps_psi"].items():
        assert torch.allclose(a, psi_resumed["eps_psi"][name], atol=1e-6), name
    assert psi_full["optimizer"]["state"][0]["step"] == psi_resumed["optimizer"]["state"][0]["step"] == 8


def test_same_seed_same_result_different_seed_different(prior, tmp_path):
    def params(seed, name):
        t = Trainer(small_config(steps=6, **{"train.seed": seed}), prior, tmp_path / name)
        t.run()
        return torch.cat([p.flatten() for p in t.field.parameters()])

    a, b, c = params(1, "a"), params(1, "b"), params(2, "c")
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_resume_with_other_settings_is_refused(prior, tmp_path):
    t = Trainer(small_config(steps=3), prior, tmp_path)
    t.run()
    other = Trainer(small_config(steps=3, **{"guidance.guidance_scale": 7.0}), prior, tmp_path)
    with pytest.raises(ValueError, match="different settings.*guidance_scale"):
        other.load_checkpoint()


def test_nan_stops_the_run_and_keeps_the_checkpoint(prior, tmp_path):
    t = Trainer(small_config(steps=10), prior, tmp_path)
    cancel = threading.Event()
    t.callbacks = Callbacks(on_progress=lambda p: cancel.set() if p.step == 5 else None)
    t.run(cancel)  # checkpoint at step 5
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with torch.no_grad():
        t.field.density_head[2].bias.fill_(float("nan"))
    t.callbacks = Callbacks()
    with pytest.raises(TrainingDiverged, match="at step 5"):
        t.run()
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_shading_schedule_uses_every_mode():
    r = RendererConfig(shading_start_step=10).setup(1.0)
    g = torch.Generator().manual_seed(0)
    assert {r.pick_shading(s, g) for s in range(10)} == {Shading.ALBEDO}
    assert {r.pick_shading(100, g) for _ in range(200)} == set(Shading)

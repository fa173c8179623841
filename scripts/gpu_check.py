"""Every device seam of the engine on the GPU, against the CPU, with speeds — in a few minutes.

    python scripts/gpu_check.py                       # on a CUDA machine: exit 0 when every check passes
    python scripts/gpu_check.py --device cuda:1       # another GPU
    python scripts/gpu_check.py --device cpu --quick  # self-test of this script on any machine (CPU vs CPU)

Run it from the repository root (the tiny Stable Diffusion components come from ``tests/priors/tiny.py``),
offline, the day a GPU machine is at hand. Each check runs one seam on the device and on the CPU with the
same parameters and inputs and compares the numbers, then times it on both:

* ``hashgrid.torch``      the pure-torch hash grid, forward and table gradient (eager);
* ``hashgrid.compile``    the same grid through torch.compile on the device, against eager;
* ``hashgrid.tcnn``       tiny-cuda-nn's grid when it imports (its vertex conventions differ, so it is
                          checked for shape, range, finite gradients and speed, not against torch);
* ``renderer``            a training render of a field and the gradient it sends back to the hash table;
* ``prior.builtin.fp16`` / ``.fp32``   the built-in prior (text encoder, encode, UNet ε, decode) in the
                          engine's dtype for the device and in fp32;
* ``prior.sd-tiny.fp16``  tiny random Stable Diffusion components (VAE, CLIP, UNet) in the device dtype;
* ``esd.lora``            three ESD steps (each with its LoRA step on ε_ψ) from the same start;
* ``e2e``                 one step against the CPU, then a short job end to end on the device (train +
                          export to .glb) with its it/s.

Tolerances are relative errors ‖a − b‖ / ‖b‖ (fp16 is looser than fp32; cuDNN convolutions use TF32).
Without CUDA the script says so in one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: tests.priors.tiny lives beside the engine
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

CPU = torch.device("cpu")


@dataclass
class Result:
    name: str
    status: str
    """PASS, FAIL or SKIP."""
    detail: str = ""
    its: dict[str, float] = field(default_factory=dict)
    """Iterations per second by device label ("device", "cpu")."""


@dataclass
class Env:
    device: torch.device
    quick: bool
    tmp: Path
    _cache: dict = field(default_factory=dict)

    def cached(self, key: str, make: Callable):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def its(self, fn: Callable[[], object], device: torch.device, most: int = 200) -> float:
        """Speed of ``fn``; the self-test (--quick) times a single call, it checks the path, not the speed."""
        return its(fn, device, seconds=0.0 if self.quick else 1.0, most=1 if self.quick else most)


CHECKS: list[tuple[str, Callable[[Env], Result]]] = []


def check(name: str):
    def register(fn: Callable[[Env], Result]) -> Callable[[Env], Result]:
        CHECKS.append((name, fn))
        return fn

    return register


# ---------------------------------------------------------------------- helpers
def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ on the CPU in float64 (0 when both are zero)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    den = b.norm().item()
    return (a - b).norm().item() / den if den > 0 else (a - b).norm().item()


def its(fn: Callable[[], object], device: torch.device, seconds: float = 1.0, most: int = 200) -> float:
    """Calls per second of ``fn`` after one warm-up call (synchronised on CUDA)."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while n < most and (n < min(2, most) or time.perf_counter() - t0 < seconds):
        fn()
        n += 1
    sync()
    return n / (time.perf_counter() - t0)


def compare(name: str, errors: dict[str, float], tol: float, speeds: dict[str, float]) -> Result:
    worst = max(errors.values())
    ok = math.isfinite(worst) and worst <= tol
    detail = ", ".join(f"{k} {v:.1e}" for k, v in errors.items()) + f" (tol {tol:.0e})"
    return Result(name, "PASS" if ok else "FAIL", detail, speeds)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def grid_config(env: Env, **extra):
    from engine.fields.hashgrid import HashGridConfig

    size = dict(n_levels=8, log2_hashmap_size=14) if env.quick else dict(n_levels=16, log2_hashmap_size=17)
    return HashGridConfig(**{**size, "compile": False, "implementation": "torch", **extra})


def pair(env: Env, build: Callable[[torch.device], object]) -> tuple[object, object]:
    """The same thing built on the device and on the CPU."""
    return build(env.device), build(CPU)


# ---------------------------------------------------------------------- checks
@check("hashgrid.torch")
def hashgrid_torch(env: Env) -> Result:
    from engine.fields.hashgrid import make_hash_grid

    cfg = grid_config(env)
    dev, ref = pair(env, lambda d: make_hash_grid(cfg, d, gen(0)))
    n = 2**14 if env.quick else 2**18
    x, w = torch.rand(n, 3, generator=gen(1)), torch.randn(n, cfg.n_levels * 2, generator=gen(2))
    outs, grads = {}, {}
    for label, grid, d in (("device", dev, env.device), ("cpu", ref, CPU)):
        grid.zero_grad()
        out = grid(x.to(d))
        (out * w.to(d)).sum().backward()
        outs[label], grads[label] = out.detach().clone(), grid.embeddings.grad.clone()

    def step(grid, d):
        def go():
            grid.zero_grad()
            (grid(x.to(d)) * w.to(d)).sum().backward()

        return go

    errors = {"forward": rel(outs["device"], outs["cpu"]), "grad": rel(grads["device"], grads["cpu"])}
    speeds = {"device": env.its(step(dev, env.device), env.device), "cpu": env.its(step(ref, CPU), CPU)}
    return compare("hashgrid.torch", errors, 1e-5, speeds)


@check("hashgrid.compile")
def hashgrid_compile(env: Env) -> Result:
    from engine.fields.hashgrid import make_hash_grid

    eager = make_hash_grid(grid_config(env), env.device, gen(0))
    compiled = make_hash_grid(grid_config(env, compile=True), env.device, gen(0))
    x = torch.rand(2**14, 3, generator=gen(1)).to(env.device)
    a, b = compiled(x), eager(x)
    b.sum().backward()
    a.sum().backward()
    errors = {"forward": rel(a, b), "grad": rel(compiled.embeddings.grad, eager.embeddings.grad)}
    speeds = {"device": env.its(lambda: compiled(x).sum().backward(), env.device)}
    return compare("hashgrid.compile", errors, 1e-5, speeds)


@check("hashgrid.tcnn")
def hashgrid_tcnn(env: Env) -> Result:
    from engine.fields.hashgrid import TcnnHashGrid, make_hash_grid, tcnn_unavailable

    reason = tcnn_unavailable(env.device)
    if reason is not None:
        return Result("hashgrid.tcnn", "SKIP", reason)
    cfg = grid_config(env, implementation="tcnn")
    grid = TcnnHashGrid(cfg, env.device, gen(0))
    torch_grid = make_hash_grid(grid_config(env), env.device, gen(0))
    x = torch.rand(2**18, 3, generator=gen(1)).to(env.device)
    out = grid(x)
    out.sum().backward()
    grad = grid.encoding.params.grad
    shape_ok = tuple(out.shape) == (len(x), cfg.n_levels * cfg.n_features_per_level)
    in_range = bool(out.abs().max() <= cfg.init_scale * 1.01)
    finite = bool(torch.isfinite(out).all() and grad is not None and torch.isfinite(grad).all())
    speeds = {
        "device": env.its(lambda: grid(x).sum().backward(), env.device),
        "torch grid": env.its(lambda: torch_grid(x).sum().backward(), env.device),
    }
    ok = shape_ok and in_range and finite
    detail = f"shape {'ok' if shape_ok else tuple(out.shape)}, range {'ok' if in_range else 'beyond init'}, "
    detail += f"finite {'ok' if finite else 'NO'} (not comparable to torch: different vertex conventions)"
    return Result("hashgrid.tcnn", "PASS" if ok else "FAIL", detail, speeds)


@check("renderer")
def renderer(env: Env) -> Result:
    from engine.cameras import orbit_cameras
    from engine.fields.nerf import FieldConfig
    from engine.render.renderer import RendererConfig

    fcfg = FieldConfig(grid=grid_config(env))
    size = 32 if env.quick else 64

    def build(d):
        f = fcfg.setup(d, gen(0))
        r = RendererConfig(n_samples=32 if env.quick else 64).setup(fcfg.bound).to(d)
        r.occupancy_grid.cfg.enabled = False  # the same samples on both sides: no grid state involved
        return f, r

    (fd, rd), (fc, rc) = pair(env, build)
    one = torch.ones(2)
    cams = orbit_cameras(one * 20.0, torch.tensor([30.0, 200.0]), one * 2.5, one * 45.0)
    outs, grads = {}, {}
    for label, (f, r), d in (("device", (fd, rd), env.device), ("cpu", (fc, rc), CPU)):
        out = r.render(f, cams.to(d), size, generator=gen(3))
        out.rgb.mean().backward()
        outs[label], grads[label] = out.rgb.detach().clone(), f.encoding.embeddings.grad.clone()

    def step(f, r, d):
        return lambda: r.render(f, cams.to(d), size, generator=gen(3)).rgb.mean().backward()

    errors = {"rgb": rel(outs["device"], outs["cpu"]), "grad": rel(grads["device"], grads["cpu"])}
    speeds = {"device": env.its(step(fd, rd, env.device), env.device), "cpu": env.its(step(fc, rc, CPU), CPU)}
    return compare("renderer", errors, 1e-4, speeds)


def _load(spec_or_cfg, device: torch.device, fp32: bool = False):
    """A prior on ``device``; ``fp32`` overrides the engine's dtype choice (fp16 on CUDA) for this load."""
    from engine.priors import load_prior, resolve_prior_spec

    cfg = resolve_prior_spec(spec_or_cfg) if isinstance(spec_or_cfg, str) else spec_or_cfg
    if not fp32:
        return load_prior(cfg, device)
    module = sys.modules[type(cfg).__module__]
    with mock.patch.object(module, "prior_dtype", lambda d: torch.float32):
        return load_prior(cfg, device)


def _prior_errors(env: Env, dev, ref) -> tuple[dict[str, float], dict[str, float]]:
    """Text encoder, encode, ε-prediction (CFG batch of 2) and decode of two copies of one prior."""
    prompts = ["a red cube", ""]
    e_d, e_c = dev.encode_prompts(prompts), ref.encode_prompts(prompts)
    rgb = torch.rand(1, 3, ref.resolution, ref.resolution, generator=gen(4))
    z_d, z_c = dev.encode_images(rgb), ref.encode_images(rgb)
    noise = torch.randn(z_c.shape, generator=gen(5))
    t = torch.tensor([500, 500])
    z_t = torch.cat([z_c + noise] * 2)
    eps_d, eps_c = dev.predict_noise(z_t.to(dev.device), t, e_d), ref.predict_noise(z_t, t, e_c)
    errors = {
        "text": rel(e_d, e_c),
        "encode": rel(z_d, z_c),
        "eps": rel(eps_d, eps_c),
        "decode": rel(dev.decode(z_c.to(dev.device)), ref.decode(z_c)),
    }
    speeds = {
        "device": env.its(lambda: dev.predict_noise(z_t.to(dev.device), t, e_d), dev.device),
        "cpu": env.its(lambda: ref.predict_noise(z_t, t, e_c), CPU),
    }
    return errors, speeds


def _prior_check(env: Env, name: str, spec, fp32: bool) -> Result:
    key = spec if isinstance(spec, str) else spec.model
    ref = env.cached(f"{key}:cpu", lambda: _load(spec, CPU))
    dev = env.cached(
        f"{key}:device:{'fp32' if fp32 else 'default'}", lambda: _load(spec, env.device, fp32=fp32)
    )
    errors, speeds = _prior_errors(env, dev, ref)
    tol = 5e-3 if dev.dtype == torch.float32 else 3e-2
    r = compare(name, errors, tol, speeds)
    r.detail = f"{str(dev.dtype).removeprefix('torch.')} on {env.device}: {r.detail}"
    return r


@check("prior.builtin.fp16")
def prior_builtin_fp16(env: Env) -> Result:
    return _prior_check(env, "prior.builtin.fp16", "builtin", fp32=False)


@check("prior.builtin.fp32")
def prior_builtin_fp32(env: Env) -> Result:
    return _prior_check(env, "prior.builtin.fp32", "builtin", fp32=True)


def tiny_sd(env: Env):
    from engine.priors.stable_diffusion import StableDiffusionConfig
    from tests.priors.tiny import build_tiny_sd_prior

    folder = env.cached("tiny_sd", lambda: build_tiny_sd_prior(env.tmp / "tiny_sd"))
    return StableDiffusionConfig(model=str(folder))


@check("prior.sd-tiny.fp16")
def prior_sd_tiny(env: Env) -> Result:
    return _prior_check(env, "prior.sd-tiny.fp16", tiny_sd(env), fp32=False)


def _small_overrides(env: Env, steps: int, **extra) -> dict:
    return {
        "field.grid.n_levels": 8,
        "field.grid.log2_hashmap_size": 14,
        "field.grid.compile": False,
        "train.steps": steps,
        "train.render_size": 32,
        "renderer.n_samples": 32,
        "train.checkpoint_every": 0,
        "train.preview_every": 0,
        **extra,
    }


@check("esd.lora")
def esd_lora(env: Env) -> Result:
    from engine.config import build_config
    from engine.train import Trainer

    cfg_sd = tiny_sd(env)
    steps = 3

    def trainer(d):
        prior = _load(cfg_sd, d)
        cfg = build_config(
            "a red cube", method="esd", prior=cfg_sd.model, overrides=_small_overrides(env, steps)
        )
        return Trainer(cfg, prior, env.tmp / f"esd_{d.type}")

    dev, ref = pair(env, trainer)
    stats_d = [dev.train_step() for _ in range(steps)]
    stats_c = [ref.train_step() for _ in range(steps)]
    errors = {}
    for key in ("loss", "lora_loss"):
        a = torch.tensor([s[key] for s in stats_d])
        errors[key] = rel(a, torch.tensor([s[key] for s in stats_c]))
    speeds = {"device": env.its(dev.train_step, env.device), "cpu": env.its(ref.train_step, CPU, most=5)}
    return compare("esd.lora", errors, 5e-2 if dev.prior.dtype == torch.float16 else 5e-3, speeds)


@check("e2e")
def e2e(env: Env) -> Result:
    from engine.config import build_config
    from engine.train import Trainer
    from engine.variants import Variant, run_variant

    steps = 3 if env.quick else 100
    extra = {"export.resolution": 64, "export.target_faces": 3000} if env.quick else {}
    overrides = {"train.steps": steps, "train.preview_every": 0, "train.checkpoint_every": 0, **extra}
    if env.quick:
        overrides = _small_overrides(env, steps, **extra)
    cfg = build_config("a red cube", prior="builtin", overrides=overrides)
    dev_prior = env.cached("builtin:device:default", lambda: _load("builtin", env.device))
    ref_prior = env.cached("builtin:cpu", lambda: _load("builtin", CPU))
    first = {
        label: Trainer(
            build_config("a red cube", prior="builtin", overrides=overrides), p, env.tmp / label
        ).train_step()["loss"]
        for label, p in (("device", dev_prior), ("cpu", ref_prior))
    }
    v = Variant(0, 0, env.tmp / "e2e_run", env.tmp / "e2e" / "asset.glb")
    t0 = time.perf_counter()
    r = run_variant(cfg, dev_prior, v)
    wall = time.perf_counter() - t0
    train_s = r.record["seconds"]["train"]
    faces = r.record["mesh"]["faces"]
    ok = r.status == "done" and faces > 0 and v.asset.is_file() and math.isfinite(r.record["final_loss"])
    err = abs(first["device"] - first["cpu"]) / max(abs(first["cpu"]), 1e-12)
    tol = 5e-2 if dev_prior.dtype == torch.float16 else 5e-3
    ok = ok and err <= tol
    detail = (
        f"step-1 loss {err:.1e} (tol {tol:.0e}); {steps} steps + export in {wall:.1f} s, "
        f"{faces} faces, export {r.record['seconds']['export']:.1f} s"
    )
    return Result("e2e", "PASS" if ok else "FAIL", detail, {"device": steps / max(train_s, 1e-9)})


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="the device to check (cuda, cuda:N; cpu: self-test)")
    p.add_argument("--quick", action="store_true", help="small sizes and few steps (the CPU self-test)")
    p.add_argument("--only", default="", help="comma-separated check names (default: all)")
    args = p.parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        print(f"error: unknown device {args.device!r}: use cuda, cuda:N or cpu", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"error: no CUDA device here (torch {torch.__version__}, torch.cuda.is_available() is False): run "
            "this on a GPU machine with the CUDA build of torch, or pass --device cpu for a self-test",
            file=sys.stderr,
        )
        return 2
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        print(f"error: {device} does not exist ({torch.cuda.device_count()} GPU(s))", file=sys.stderr)
        return 2
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - {n for n, _ in CHECKS}
    if unknown:
        print(f"error: unknown check(s) {sorted(unknown)}; known: {[n for n, _ in CHECKS]}", file=sys.stderr)
        return 2

    from engine.device import describe

    print(f"gpu_check: {describe(device)} against the CPU, torch {torch.__version__}", flush=True)
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        env = Env(device, args.quick, Path(tmp))
        for name, fn in CHECKS:
            if only and name not in only:
                continue
            t = time.perf_counter()
            try:
                r = fn(env)
            except Exception as e:  # one broken seam must not hide the others
                r = Result(name, "FAIL", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            speed = "  ".join(f"{k} {v:.1f} it/s" for k, v in r.its.items())
            print(
                f"{r.status:4}  {name:20} {r.detail}  [{speed}] ({time.perf_counter() - t:.1f} s)", flush=True
            )
            results.append(r)
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    total = time.perf_counter() - t0
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped in {total:.0f} s")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())

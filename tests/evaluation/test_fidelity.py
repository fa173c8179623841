"""Fidelity statistics: zero distance to itself, blur lowers high frequencies, saturation moves as it should."""

import math

import torch
import torch.nn.functional as F

from engine.evaluation.fidelity import (
    compare,
    high_frequency_fraction,
    histogram,
    image_statistics,
    radial_power_spectrum,
    saturation,
    wasserstein1,
)


def blur(rgb: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    r = int(3 * sigma)
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    c = rgb.shape[1]
    out = F.conv2d(
        F.pad(rgb, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c
    )
    return F.conv2d(
        F.pad(out, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c
    )


def test_an_image_set_against_itself_is_at_zero_distance(red_cube):
    s = image_statistics(red_cube.rgb, red_cube.mask)
    d = compare(s, s)
    assert d.spectrum_log10_l1 == 0.0 and d.saturation_w1 == 0.0 and d.derivative_w1 == 0.0
    assert d.hf_fraction == d.hf_fraction_truth and d.saturation_mean == d.saturation_mean_truth


def test_blur_removes_high_frequency_power_and_large_derivatives(red_cube):
    sharp = image_statistics(red_cube.rgb, red_cube.mask)
    soft = image_statistics(blur(red_cube.rgb), red_cube.mask)
    k = len(sharp.spectrum)
    assert (soft.spectrum[k // 2 :] < sharp.spectrum[k // 2 :]).all()
    assert soft.hf_fraction < 0.5 * sharp.hf_fraction
    assert soft.derivative_mean_abs < sharp.derivative_mean_abs
    d = compare(soft, sharp)
    assert d.spectrum_log10_l1 > 0.1 and d.derivative_w1 > 0.0
    # A lighter blur lands closer to the truth than a heavier one.
    assert compare(image_statistics(blur(red_cube.rgb, 0.7)), sharp).spectrum_log10_l1 < d.spectrum_log10_l1


def test_saturation_follows_desaturation_and_oversaturation(red_cube):
    rgb, mask = red_cube.rgb, red_cube.mask
    grey = rgb.mean(dim=1, keepdim=True)
    faded = image_statistics(0.5 * rgb + 0.5 * grey, mask)
    vivid = image_statistics((grey + 1.5 * (rgb - grey)).clamp(0, 1), mask)
    truth = image_statistics(rgb, mask)
    assert faded.saturation_mean < truth.saturation_mean < vivid.saturation_mean
    assert compare(faded, truth).saturation_w1 > 0.1 and compare(vivid, truth).saturation_w1 > 0.0
    assert saturation(torch.full((1, 3, 4, 4), 0.7)).abs().max() == 0.0  # grey has none


def test_radial_spectrum_peaks_at_the_frequency_of_a_sinusoid():
    x = torch.arange(32, dtype=torch.float32)
    wave = 0.5 + 0.4 * torch.sin(2 * math.pi * 5 * x / 32)
    img = wave.view(1, 1, 1, 32).expand(1, 3, 32, 32)
    p = radial_power_spectrum(img)[0]
    assert int(p.argmax()) + 1 == 5 and p[4] > 1e6 * p[10]
    assert high_frequency_fraction(img) < 1e-6  # 5 cycles < 32 / 4


def test_wasserstein_and_histogram():
    a = torch.rand(1000)
    assert wasserstein1(a, a[torch.randperm(1000)]) == 0.0
    assert abs(wasserstein1(a, a + 0.1) - 0.1) < 1e-6  # float32 rounding of a + 0.1
    assert abs(wasserstein1(torch.zeros(10), torch.ones(7)) - 1.0) < 1e-9
    edges = torch.linspace(-1, 1, 11)
    h = histogram(torch.randn(500) * 0.3, edges)
    assert abs(float((h * (edges[1:] - edges[:-1])).sum()) - 1.0) < 1e-5

import pytest
import torch
from torch import nn

from nnunet_thrombus.networks.cbam import CBAM, CBAM2d, CBAM3d

CASES = [  # (module factory, input shape)
    (lambda: CBAM3d(8, reduction=4), (2, 8, 5, 6, 7)),
    (lambda: CBAM3d(16, spatial_kernel_size=3), (1, 16, 4, 8, 8)),
    (lambda: CBAM2d(8, reduction=2), (3, 8, 9, 10)),
    (lambda: CBAM(4, nn.Conv3d), (1, 4, 3, 3, 3)),
]


@pytest.mark.parametrize("factory, shape", CASES)
def test_cbam_shapes_and_maps_in_unit_interval(factory, shape):
    torch.manual_seed(0)
    module = factory()
    x = torch.randn(shape) * 5
    with torch.no_grad():
        out, channel_map, spatial_map = module.forward_with_maps(x)
    assert out.shape == x.shape
    assert channel_map.shape == (shape[0], shape[1]) + (1,) * (len(shape) - 2)
    assert spatial_map.shape == (shape[0], 1) + shape[2:]
    for m in (channel_map, spatial_map):
        assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
    torch.testing.assert_close(out, x * channel_map * spatial_map)


def test_channel_attention_pools_over_all_three_spatial_axes():
    # a feature that differs only along the last (z) axis must change the channel descriptor
    torch.manual_seed(0)
    module = CBAM3d(4, reduction=2)
    x = torch.zeros(1, 4, 3, 3, 6)
    y = x.clone()
    y[0, 0, :, :, 5] = 10.0
    assert not torch.allclose(module.channel_attention(x), module.channel_attention(y))


@pytest.mark.parametrize("kwargs", [dict(channels=0), dict(channels=4, reduction=0),
                                    dict(channels=4, spatial_kernel_size=4)])
def test_cbam_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        CBAM3d(**kwargs)


def test_cbam_rejects_wrong_dimension_input():
    with pytest.raises(ValueError, match="spatial dims"):
        CBAM3d(4)(torch.zeros(1, 4, 5, 5))


def test_residual_cbam_adds_the_input_back():
    torch.manual_seed(0)
    gated, residual = CBAM3d(8, reduction=4), CBAM3d(8, reduction=4, residual=True)
    residual.load_state_dict(gated.state_dict())  # same weights, no extra parameters
    x = torch.randn(2, 8, 5, 6, 7) * 3
    with torch.no_grad():
        out_g, mc, ms = gated.forward_with_maps(x)
        out_r, mc_r, ms_r = residual.forward_with_maps(x)
    torch.testing.assert_close(out_r, x + out_g)
    torch.testing.assert_close(out_r, x * (1 + mc * ms))
    # never below the identity: |out| >= |x| everywhere, and at most 2|x|
    assert bool((out_r.abs() >= x.abs() - 1e-6).all()) and bool((out_r.abs() <= 2 * x.abs() + 1e-6).all())

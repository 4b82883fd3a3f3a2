import pytest
import torch
from torch import nn

from nnunet_thrombus.networks.pyramid_fusion import ScaleAwarePyramidFusion, ScaleAwarePyramidFusion3d


@pytest.mark.parametrize("shape, kernel", [((2, 8, 6, 10, 10), 3), ((1, 8, 5, 7, 9), [1, 3, 3]), ((1, 8, 3, 3, 3), 3)])
def test_pyramid_keeps_size_and_weights_sum_to_one(shape, kernel):
    torch.manual_seed(0)
    module = ScaleAwarePyramidFusion3d(8, kernel_size=kernel, norm_op=nn.BatchNorm3d, nonlin=nn.LeakyReLU)
    out, weights = module.forward_with_weights(torch.randn(shape))
    assert out.shape == shape
    assert weights.shape == (shape[0], 3) + shape[2:]
    torch.testing.assert_close(weights.sum(1), torch.ones(shape[0], *shape[2:]))


@pytest.mark.parametrize("dilations, extent", [((1,), 3), ((2,), 5), ((3,), 7), ((1, 2, 3), 7), ((1, 2, 4), 9)])
def test_receptive_field_grows_with_dilation(dilations, extent):
    # impulse in the middle; the non-residual part of the output is non-zero exactly on the kernel footprint
    torch.manual_seed(0)
    module = ScaleAwarePyramidFusion(2, nn.Conv3d, dilations, norm_op=None, nonlin=nn.LeakyReLU)
    with torch.no_grad():
        for conv in module.convs:
            conv.weight.abs_()  # positive weights: no cancellation, LeakyReLU keeps sign
    x = torch.zeros(1, 2, 15, 15, 15)
    x[0, :, 7, 7, 7] = 1.0
    with torch.no_grad():
        delta = (module(x) - x).abs().sum(1)[0]
    nz = torch.nonzero(delta > 0)
    for axis in range(3):
        assert int(nz[:, axis].max() - nz[:, axis].min() + 1) == extent


def test_shared_weights_cut_parameters_by_the_number_of_branches():
    shared = ScaleAwarePyramidFusion(8, nn.Conv3d, (1, 2, 3), conv_bias=False)
    separate = ScaleAwarePyramidFusion(8, nn.Conv3d, (1, 2, 3), conv_bias=False, share_weights=False)
    head = sum(p.numel() for p in shared.scale_attention.parameters())
    assert sum(p.numel() for p in shared.parameters()) - head == 8 * 8 * 27
    assert sum(p.numel() for p in separate.parameters()) - head == 3 * 8 * 8 * 27


@pytest.mark.parametrize("kwargs", [dict(dilations=()), dict(dilations=(0,)), dict(kernel_size=2)])
def test_pyramid_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ScaleAwarePyramidFusion(4, nn.Conv3d, **kwargs)

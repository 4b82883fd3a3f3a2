import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from networks_testlib import n_params, tiny_arch
from nnunet_thrombus.networks.cascade_net import ThrombusCascadeNet
from nnunet_thrombus.networks.coarse_net import ThrombusCoarseUNet
from nnunet_thrombus.networks.fine_net import ThrombusFineUNet

SHAPE_CASES = [  # (arch overrides, spatial input size); odd sizes sit on stride-1 axes
    (dict(), (8, 12, 12)),
    (dict(strides=(1, (1, 2, 2), (1, 2, 2))), (9, 12, 16)),
    (dict(strides=(1, (1, 2, 2), (1, 2, 2))), (7, 16, 12)),
    (dict(n_stages=2, strides=(1, (2, 1, 2))), (10, 5, 6)),
]


def _coarse(ds=True, **over):
    arch = tiny_arch(**{k: v for k, v in over.items() if k in ("n_stages", "strides", "norm")})
    return ThrombusCoarseUNet(input_channels=2, num_classes=2, deep_supervision=ds, **arch)


@pytest.mark.parametrize("over, size", SHAPE_CASES)
def test_coarse_logits_and_feature_shapes(over, size):
    torch.manual_seed(0)
    net = _coarse(**over)
    logits, feats = net.forward_with_features(torch.randn(2, 2, *size))
    n_levels = net.encoder.stages.__len__() - 1
    assert len(logits) == len(feats) == n_levels
    scale = torch.tensor([1, 1, 1])
    for k in range(n_levels):
        scale = scale * torch.tensor(net.encoder.strides[k])
        level_size = tuple(int(s) for s in torch.tensor(size) // scale)
        assert logits[k].shape == (2, 2) + level_size
        assert feats[k].shape == (2, net.encoder.output_channels[k]) + level_size
    net.decoder.deep_supervision = False
    assert net(torch.randn(1, 2, *size)).shape == (1, 2) + size


@pytest.mark.parametrize("coarse_size", [(4, 6, 6), (9, 13, 11)])
def test_fine_output_shape_for_any_coarse_feature_size(coarse_size):
    torch.manual_seed(0)
    net = ThrombusFineUNet(input_channels=3, num_classes=2, coarse_feature_channels=[4, 8], **tiny_arch())
    feats = [torch.randn(2, 4, *coarse_size), torch.randn(2, 8, *coarse_size)]
    assert net(torch.randn(2, 3, 8, 12, 12), feats).shape == (2, 2, 8, 12, 12)


def test_fine_output_depends_on_coarse_features_only_when_enabled():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 12, 12)
    feats_a = [torch.randn(1, 4, 4, 6, 6), torch.randn(1, 8, 2, 3, 3)]
    feats_b = [f + 1.0 for f in feats_a]
    on = ThrombusFineUNet(input_channels=3, num_classes=2, coarse_feature_channels=[4, 8], **tiny_arch()).eval()
    off = ThrombusFineUNet(input_channels=3, num_classes=2, coarse_feature_channels=None, **tiny_arch()).eval()
    with torch.no_grad():
        assert (on(x, feats_a) - on(x, feats_b)).abs().max() > 1e-4
        assert (on(x, None) - on(x, feats_a)).abs().max() > 1e-4  # None means zeros, not "ignore"
        torch.testing.assert_close(off(x, feats_a), off(x, feats_b))
        torch.testing.assert_close(off(x, feats_a), off(x))


@pytest.mark.parametrize("cls, extra", [(ThrombusCoarseUNet, {}), (ThrombusFineUNet, {"coarse_feature_channels": None}),
                                        (ThrombusCascadeNet, {"use_coarse_features": False})])
def test_all_switches_off_equals_plain_conv_unet(cls, extra):
    arch = tiny_arch(norm=nn.BatchNorm3d)
    torch.manual_seed(0)
    plain = PlainConvUNet(input_channels=3, num_classes=2, deep_supervision=True, **arch).eval()
    ours = cls(input_channels=3, num_classes=2, deep_supervision=True, use_cbam=False, use_pyramid_fusion=False,
               **extra, **arch).eval()
    assert n_params(ours) == n_params(plain)
    ours.load_state_dict(plain.state_dict(), strict=True)  # same names, same shapes
    x = torch.randn(1, 3, 8, 12, 12)
    with torch.no_grad():
        for a, b in zip(ours(x), plain(x)):
            torch.testing.assert_close(a, b)


def test_switches_add_parameters():
    arch = tiny_arch()
    plain = n_params(PlainConvUNet(input_channels=2, num_classes=2, **arch))
    cbam = n_params(ThrombusCoarseUNet(input_channels=2, num_classes=2, use_pyramid_fusion=False, **arch))
    both = n_params(ThrombusCoarseUNet(input_channels=2, num_classes=2, **arch))
    assert plain < cbam < both


@pytest.mark.parametrize("net_factory", [
    lambda: ThrombusCoarseUNet(input_channels=2, num_classes=2, deep_supervision=True, **tiny_arch()),
    lambda: ThrombusFineUNet(input_channels=3, num_classes=2, deep_supervision=True, coarse_feature_channels=[4, 8],
                             **tiny_arch()),
])
def test_gradients_reach_every_parameter(net_factory):
    torch.manual_seed(0)
    net = net_factory()
    x = torch.randn(2, net.encoder.stages[0][0].convs[0].conv.in_channels, 8, 12, 12)
    extra = ([torch.randn(2, 4, 4, 6, 6, requires_grad=True), torch.randn(2, 8, 4, 6, 6, requires_grad=True)]
             if isinstance(net, ThrombusFineUNet) else [])
    out = net(x, extra) if extra else net(x)
    sum(o.square().mean() for o in out).backward()  # every deep-supervision head contributes
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad == []
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in extra)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_stages=1, features_per_stage=[4], kernel_sizes=[3], strides=[1], n_conv_per_stage=[2],
          n_conv_per_stage_decoder=[]), "n_stages"),
    (dict(features_per_stage=[4, 8]), "features_per_stage"),
    (dict(strides=[1, 2]), "strides"),
    (dict(n_conv_per_stage_decoder=[1, 1, 1]), "n_conv_per_stage_decoder"),
    (dict(conv_op="torch.nn.NoSuchConv"), "importable"),
])
def test_constructor_rejects_bad_arch_kwargs(kwargs, match):
    arch = tiny_arch()
    arch.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ThrombusCoarseUNet(input_channels=2, num_classes=2, **arch)


def test_fine_rejects_wrong_number_of_coarse_levels():
    with pytest.raises(ValueError, match="injected_channels"):
        ThrombusFineUNet(input_channels=3, num_classes=2, coarse_feature_channels=[4], **tiny_arch())
    net = ThrombusFineUNet(input_channels=3, num_classes=2, coarse_feature_channels=[4, 8], **tiny_arch())
    with pytest.raises(ValueError, match="one per decoder level"):
        net(torch.randn(1, 3, 8, 12, 12), [torch.randn(1, 4, 4, 6, 6)])

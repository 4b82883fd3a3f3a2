import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from networks_testlib import dotted, n_params, tiny_arch
from nnunet_thrombus.networks.cascade_net import ThrombusCascadeNet
from nnunet_thrombus.networks.coarse_net import ThrombusCoarseUNet
from nnunet_thrombus.networks.fine_net import ThrombusFineUNet


def _cascade(**kwargs):
    kwargs.setdefault("coarse_context", "patch")  # these tests exercise the per-patch branch
    return ThrombusCascadeNet(input_channels=3, num_classes=2, deep_supervision=True, **tiny_arch(), **kwargs)


def test_cascade_shapes_and_coarse_input_size():
    torch.manual_seed(0)
    net = _cascade()
    # fine 8x12x12, ratio ~1.73 -> 4.6x6.9x6.9, rounded up to the coarse total stride (2, 4, 4)
    assert net.coarse_input_size((8, 12, 12)) == [6, 8, 8]
    assert net.coarse_input_size((96, 160, 160)) == [56, 96, 96]
    out = net(torch.randn(2, 3, 8, 12, 12))
    assert [tuple(o.shape) for o in out] == [(2, 2, 8, 12, 12), (2, 2, 8, 6, 6)]
    assert net.num_image_channels == 2 and net.coarse_branch.encoder.stages[0][0].convs[0].conv.in_channels == 2


def test_cascade_uses_image_channels_only_for_the_coarse_branch():
    torch.manual_seed(0)
    net = _cascade().eval()
    x = torch.randn(1, 3, 8, 12, 12)
    y = x.clone()
    y[:, 2] += 1.0  # change only the segmentation channel
    with torch.no_grad():
        fa = net.coarse_features(x[:, :2])
        fb = net.coarse_features(y[:, :2])
        for a, b in zip(fa, fb):
            torch.testing.assert_close(a, b)
        assert (net(x)[0] - net(y)[0]).abs().max() > 1e-5


def _stage1_checkpoint(tmp_path, prefix=""):
    torch.manual_seed(1)
    stage1 = ThrombusCoarseUNet(input_channels=2, num_classes=2, deep_supervision=True,
                                **tiny_arch(norm=nn.BatchNorm3d))
    weights = {prefix + k: v for k, v in stage1.state_dict().items()}
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": weights, "trainer_name": "ThrombusCascadeTrainer", "current_epoch": 3}, path)
    return stage1, path


@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod.", "module._orig_mod."])
def test_load_coarse_weights_from_checkpoint_and_stay_frozen(tmp_path, prefix):
    stage1, path = _stage1_checkpoint(tmp_path, prefix)
    net = _cascade(coarse_arch_kwargs=dotted(tiny_arch(norm=nn.BatchNorm3d)))
    net.load_coarse_weights(str(path))
    for k, v in stage1.state_dict().items():
        torch.testing.assert_close(net.coarse_branch.state_dict()[k], v)
    before = {k: v.clone() for k, v in net.coarse_branch.state_dict().items()}
    fine_before = net.decoder.seg_layers[-1].weight.clone()
    net.train()
    assert not net.coarse_branch.training and net.decoder.training
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.99, nesterov=True, weight_decay=3e-5)
    for _ in range(2):
        opt.zero_grad()
        sum(o.mean() for o in net(torch.randn(2, 3, 8, 12, 12))).backward()
        opt.step()
    for k, v in net.coarse_branch.state_dict().items():  # weights and BN/IN running stats
        torch.testing.assert_close(v, before[k])
    assert all(not p.requires_grad for p in net.coarse_branch.parameters())
    assert (net.decoder.seg_layers[-1].weight - fine_before).abs().max() > 0


def test_load_coarse_weights_mismatch_has_clear_message(tmp_path):
    _, path = _stage1_checkpoint(tmp_path)
    net = _cascade(coarse_arch_kwargs={"features_per_stage": [4, 8, 32], "norm_op": nn.BatchNorm3d})
    with pytest.raises(ValueError, match="another shape"):
        net.load_coarse_weights(path)
    with pytest.raises(ValueError, match="missing"):
        _cascade(coarse_arch_kwargs={"use_cbam": False, "norm_op": nn.BatchNorm3d}).load_coarse_weights(path)
    with pytest.raises(ValueError, match="no coarse branch"):
        _cascade(use_coarse_features=False).load_coarse_weights(path)


def test_unfrozen_coarse_branch_trains():
    net = _cascade(freeze_coarse=False)
    sum(o.mean() for o in net(torch.randn(2, 3, 8, 12, 12))).backward()
    # everything but the coarse seg heads (their logits are not used) receives gradients
    no_grad = [n for n, p in net.coarse_branch.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad and all(n.startswith("decoder.seg_layers.") for n in no_grad)


def test_cascade_param_count_decomposes():
    arch = tiny_arch()
    net = _cascade()
    plain = PlainConvUNet(input_channels=3, num_classes=2, **arch)
    fine = ThrombusFineUNet(input_channels=3, num_classes=2, coarse_feature_channels=[4, 8], **arch)
    coarse = ThrombusCoarseUNet(input_channels=2, num_classes=2, **arch)
    assert n_params(net) == n_params(fine) + n_params(coarse)
    assert n_params(net, trainable_only=True) == n_params(fine) > n_params(plain)


@pytest.mark.parametrize("kwargs, match", [(dict(num_image_channels=0), "num_image_channels"),
                                           (dict(coarse_spacing_ratio=(1.7, 1.7)), "coarse_spacing_ratio"),
                                           (dict(coarse_arch_kwargs={"input_channels": 3}), "input_channels")])
def test_cascade_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _cascade(**kwargs)


@pytest.mark.parametrize("cls, extra, in_ch", [
    ("nnunet_thrombus.networks.coarse_net.ThrombusCoarseUNet", {}, 2),
    ("nnunet_thrombus.networks.fine_net.ThrombusFineUNet", {"coarse_feature_channels": [4, 8]}, 3),
    ("nnunet_thrombus.networks.cascade_net.ThrombusCascadeNet",
     {"coarse_arch_kwargs": dotted(tiny_arch(norm=nn.BatchNorm3d)), "use_cbam": False, "coarse_context": "patch"},
     3),
])
def test_build_through_nnunet_get_network_from_plans(cls, extra, in_ch):
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    arch = dotted(tiny_arch())
    arch.update(extra)
    net = get_network_from_plans(cls, arch, ["conv_op", "norm_op", "dropout_op", "nonlin"], in_ch, 2,
                                 allow_init=True, deep_supervision=True)
    assert type(net).__name__ == cls.rsplit(".", 1)[1]
    out = net(torch.randn(1, in_ch, 8, 12, 12))
    assert [tuple(o.shape) for o in out] == [(1, 2, 8, 12, 12), (1, 2, 8, 6, 6)]
    net.decoder.deep_supervision = False  # what nnU-Net's set_deep_supervision_enabled does
    assert tuple(net(torch.randn(1, in_ch, 8, 12, 12)).shape) == (1, 2, 8, 12, 12)
    if cls.endswith("CascadeNet"):
        assert isinstance(net.coarse_branch.encoder.stages[0][0].convs[0].norm, nn.BatchNorm3d)

import time

import torch
import torch.nn.functional as F
from torch import nn

from networks_testlib import tiny_arch
from nnunet_thrombus.networks.fine_net import ThrombusFineUNet


def _patch(size=16, seed=0):
    """Two-channel patch (CTA-like, NCCT-like) with a small elongated bright 'clot' and its label."""
    g = torch.Generator().manual_seed(seed)
    zz, yy, xx = torch.meshgrid(*(torch.arange(size, dtype=torch.float32),) * 3, indexing="ij")
    label = (((zz - 8) / 2.5) ** 2 + ((yy - 7) / 2.5) ** 2 + ((xx - 9) / 5.0) ** 2 <= 1).long()
    image = torch.randn(2, size, size, size, generator=g) * 0.5
    image[1] += 1.5 * label  # hyperdense on the second channel only
    return image[None], label[None]


def _dice(logits, label):
    pred = logits.argmax(1)
    inter = ((pred == 1) & (label == 1)).sum()
    return float(2 * inter / ((pred == 1).sum() + (label == 1).sum()).clamp(min=1))


def test_two_level_net_overfits_a_single_patch():
    torch.manual_seed(0)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    net = ThrombusFineUNet(input_channels=2, num_classes=2, coarse_feature_channels=[4], deep_supervision=False,
                           cbam_reduction=2, **tiny_arch(n_stages=2, features=(8, 16), strides=(1, 2),
                                                          norm=nn.InstanceNorm3d))
    image, label = _patch()
    coarse = [torch.randn(1, 4, 5, 5, 5)]  # fixed fake coarse features of another size
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    with torch.no_grad():
        assert _dice(net(image, coarse), label) < 0.5  # untrained: not already solved
    start, dice = time.perf_counter(), 0.0
    for step in range(300):
        logits = net(image, coarse)
        probs = logits.softmax(1)[:, 1]
        soft_dice = 2 * (probs * label).sum() / (probs.sum() + label.sum() + 1e-5)
        loss = F.cross_entropy(logits, label) + 1 - soft_dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9:
            with torch.no_grad():
                dice = _dice(net(image, coarse), label)
            if dice > 0.95:
                break
    print(f"Dice {dice:.3f} after {step + 1} steps")
    assert dice > 0.9, f"Dice {dice:.3f} after {step + 1} steps"
    assert time.perf_counter() - start < 60

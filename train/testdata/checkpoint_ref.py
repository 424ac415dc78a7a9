"""Loads a gotch checkpoint (.ot) into torchvision's ResNet-18 for train/pytorch_test.go.

Usage: checkpoint_ref.py weights.ot images.f32 n size stem out_dim
The .ot file is read with torch.jit.load; its tensors are loaded into torchvision.models.resnet18()
(stem "imagenet": torchvision's own conv1/maxpool; "cifar": 3x3 stride-1 conv1, no maxpool) with
fc = Sequential(Linear(512, 512), ReLU(), Linear(512, out_dim)). images.f32 holds n x 3 x size x
size little-endian float32 values. Prints JSON: the file's tensor names, the keys missing from /
unexpected by a non-strict load, and, after a strict load (the missing num_batches_tracked filled
with 0), the eval-mode representation (fc = Identity) and projection of the images.
"""
import json
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision


def main():
    weights, images, n, size, stem, out_dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    torch.set_num_threads(1)
    sd = {k: v.detach().clone() for k, v in torch.jit.load(weights, map_location="cpu").state_dict().items()}

    net = torchvision.models.resnet18()
    if stem == "cifar":
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    net.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, out_dim))
    res = net.load_state_dict(sd, strict=False)
    missing, unexpected = sorted(res.missing_keys), sorted(res.unexpected_keys)

    full = dict(sd)
    for k in missing:
        if k.endswith(".num_batches_tracked"):
            full[k] = torch.tensor(0, dtype=torch.long)
    net.load_state_dict(full, strict=True)
    net.eval()

    x = torch.from_numpy(np.fromfile(images, dtype="<f4").reshape(n, 3, size, size).copy())
    with torch.no_grad():
        proj = net(x)
        net.fc = nn.Identity()
        rep = net(x)
    json.dump({
        "keys": sorted(sd),
        "missing": missing,
        "unexpected": unexpected,
        "representation": rep.flatten().tolist(),
        "projection": proj.flatten().tolist(),
    }, sys.stdout)


if __name__ == "__main__":
    main()

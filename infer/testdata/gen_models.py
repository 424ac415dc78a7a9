"""Test and benchmark models for the infer package.

Usage: gen_models.py DIR. Writes into DIR:

  resnet18_dyn.onnx    torchvision resnet18 (ImageNet stem), fc = Identity, eval mode,
                       opset 13, dynamic batch; metadata ssl-onnx.arch=resnet18
  resnet18_b1.onnx     the same weights exported with a fixed batch of 1
  resnet18_cifar.onnx  resnet18 with the CIFAR stem (conv1 3x3 s1 p1 no bias,
                       maxpool = Identity), dynamic batch (benchmarks)
  x5.f32, y5.f32       5 random 3x32x32 images and PyTorch's resnet18 output (5x512)
  tiny.onnx            small conv net with a residual add and two outputs:
                       "logits" [N,10] (a Linear, i.e. Gemm) and "feat" [N,16]
  tiny4d.onnx          the same trunk whose only output is the pooled map [N,16,1,1]
  conv.onnx            one Conv whose output [N,16,16,16] is not a vector
  xt.f32               3 random 3x16x16 images; yt_feat.f32, yt_logits.f32 their outputs

All arrays are raw little-endian float32, row-major.
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torchvision


def save(path, t):
    t.detach().numpy().astype("<f4").tofile(path)


def export(model, x, path, names_out, dynamic=True):
    axes = None
    if dynamic:
        axes = {"input": {0: "batch"}}
        for n in names_out:
            axes[n] = {0: "batch"}
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"],
                      output_names=names_out, dynamic_axes=axes)


class Tiny(nn.Module):
    def __init__(self, four_d=False):
        super().__init__()
        self.four_d = four_d
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = self.pool(torch.relu(self.bn1(self.conv1(x))))
        h = torch.relu(h + self.conv2(h))
        p = self.gap(h)
        if self.four_d:
            return p
        f = torch.flatten(p, 1)
        return self.fc(f), f


def randomize_bn(m):
    # Non-trivial running statistics so that BatchNorm folding is exercised.
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)


def main(d):
    torch.manual_seed(0)
    with torch.no_grad():
        r = torchvision.models.resnet18()
        r.fc = nn.Identity()
        randomize_bn(r)
        r.eval()
        x = torch.randn(5, 3, 32, 32)
        save(os.path.join(d, "x5.f32"), x)
        save(os.path.join(d, "y5.f32"), r(x))
        export(r, x, os.path.join(d, "resnet18_dyn.onnx"), ["output"])
        m = onnx.load(os.path.join(d, "resnet18_dyn.onnx"))
        p = m.metadata_props.add()
        p.key, p.value = "ssl-onnx.arch", "resnet18"
        onnx.save(m, os.path.join(d, "resnet18_dyn.onnx"))
        export(r, x[:1], os.path.join(d, "resnet18_b1.onnx"), ["output"], dynamic=False)

        c = torchvision.models.resnet18()
        c.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        c.maxpool = nn.Identity()
        c.fc = nn.Identity()
        c.eval()
        export(c, x[:1], os.path.join(d, "resnet18_cifar.onnx"), ["output"])

        t = Tiny()
        randomize_bn(t)
        t.eval()
        xt = torch.randn(3, 3, 16, 16)
        logits, feat = t(xt)
        save(os.path.join(d, "xt.f32"), xt)
        save(os.path.join(d, "yt_feat.f32"), feat)
        save(os.path.join(d, "yt_logits.f32"), logits)
        export(t, xt, os.path.join(d, "tiny.onnx"), ["logits", "feat"])
        t4 = Tiny(four_d=True)
        t4.load_state_dict(t.state_dict())
        t4.eval()
        export(t4, xt, os.path.join(d, "tiny4d.onnx"), ["pooled"])
        export(t.conv1, xt, os.path.join(d, "conv.onnx"), ["map"])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: gen_models.py DIR")
    main(sys.argv[1])

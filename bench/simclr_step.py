"""PyTorch reference of ssl-onnx's SimCLR training step, for throughput comparison.

Same work as train.StepBenchmark: a torchvision ResNet (CIFAR, CIFAR-with-max-pool or ImageNet stem) with the SimCLR
head, both views in one forward pass, NT-Xent loss, backward, Adam step (--precision bf16: forward and
loss under torch.autocast, as ssl-onnx's --precision bf16). Prints one JSON line.
Run with Debian's interpreter: /usr/bin/python3 bench/simclr_step.py --arch resnet18 ...
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def model(arch, stem, out_dim):
    net = getattr(torchvision.models, arch)()
    if stem in ("cifar", "cifar-pool"):
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    if stem == "cifar":
        net.maxpool = nn.Identity()
    elif stem not in ("imagenet", "cifar-pool"):
        raise SystemExit(f"--stem {stem}: expected cifar, cifar-pool or imagenet")
    d = net.fc.in_features
    net.fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, out_dim))
    return net


def info_nce(a, b, t):
    z = F.normalize(torch.cat([a, b]), dim=1)
    n = a.shape[0]
    sim = z @ z.T / t
    sim.fill_diagonal_(-1e9)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(a.device)
    return F.cross_entropy(sim, target)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--stem", default="cifar")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: forward and loss under torch.autocast to bfloat16")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {a.device}: this PyTorch sees no CUDA device")
    net = model(a.arch, a.stem, 128).to(dev)
    net.train()
    if a.optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=3e-4, weight_decay=1e-4)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    v1 = torch.rand(a.batch_size, 3, a.size, a.size, device=dev)
    v2 = torch.rand(a.batch_size, 3, a.size, a.size, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            sync()
            t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            z = net(torch.cat([v1, v2]))
            loss = info_nce(z[: a.batch_size], z[a.batch_size:], 0.07)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync()
    secs = time.perf_counter() - t0
    print(json.dumps({"images_per_s": a.steps * a.batch_size / secs, "seconds": secs,
                      "torch": torch.__version__, "threads": a.threads,
                      "precision": a.precision}))


if __name__ == "__main__":
    main()

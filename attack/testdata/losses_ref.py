"""Float64 PyTorch reference of every registered extraction loss (package attack).

Usage: losses_ref.py manifest.json. Each case names a loss, the stolen outputs s and the
victim answers v (rows x D, raw little-endian float32), optional int64 labels and a
temperature. For every case it prints the loss and its gradient w.r.t. s (v is a constant
target) as JSON: {name: {"loss": x, "grad_s": [...]}}.

The definitions are written from the reference code of the paper (../shared/seed/code: barlow
from simclr.py's steal loop and loss.py) and the doc comments of the losses, not from the Go
code.
"""
import json
import sys

import numpy as np
import torch

torch.set_num_threads(1)
D = torch.float64


def load(path, dtype, shape):
    return torch.from_numpy(np.fromfile(path, dtype=dtype).reshape(shape).copy())


def unit(x):
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def mse(s, v, labels, t):
    return ((s - v) ** 2).mean()


def cosine(s, v, labels, t):
    return 1 - (unit(s) * unit(v)).sum(1).mean()


def wasserstein(s, v, labels, t):
    def cdf(x):
        p = x.abs() + 1e-8
        p = p / p.sum(1, keepdim=True)
        return p.cumsum(1)
    return (cdf(s) - cdf(v)).abs().sum(1).mean()


def off_diagonal(x):
    # the seed's loss.py off_diagonal: the flattened off-diagonal elements of a square matrix
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def seed_barlow_loss(z1, z2):
    # the seed's loss.py barlow_loss (BatchNorm1d(affine=False) in training mode)
    bn = torch.nn.BatchNorm1d(z1.shape[1], affine=False).to(D)
    c = bn(z1).T @ bn(z2)
    c = c / z1.shape[0]
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = off_diagonal(c).pow(2).sum()
    return on_diag + 0.0051 * off_diag


def barlow(s, v, labels, t):
    # the seed's simclr.py steal loop, loss "barlow": the batch's first half is view 1 (x1),
    # the second view 2 (x2); P1 = cat[stolen(x1), victim(x1)], P2 = cat[stolen(x2), victim(x2)]
    h = s.shape[0] // 2
    p1 = torch.cat([s[:h], v[:h]], dim=0)
    p2 = torch.cat([s[h:], v[h:]], dim=0)
    return seed_barlow_loss(p1, p2)


def symmetrized(s, v, labels, t):
    h = s.shape[0] // 2
    s1, s2, v1, v2 = s[:h], s[h:], v[:h], v[h:]
    cos = torch.nn.functional.cosine_similarity
    # eps tiny so F.cosine_similarity is the plain x.y / (|x| |y|) (no row is near zero)
    return -0.5 * (cos(s1, v2, dim=1, eps=1e-30).mean() + cos(s2, v1, dim=1, eps=1e-30).mean())


def bce(s, v, labels, t):
    target = torch.round(torch.sigmoid(v))
    return torch.nn.functional.binary_cross_entropy_with_logits(s, target)


def infonce(a, b, labels, t):
    # NT-Xent (SimCLR): positive of row i of [a; b] is its partner in the other half.
    n = a.shape[0]
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / t
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return torch.nn.functional.cross_entropy(sim, target)


def softnn(a, b, labels, t):
    # Soft nearest neighbour (Frosst et al.) with label(i) = i mod N, self excluded.
    n = a.shape[0]
    x = torch.cat([a, b])
    d = torch.cdist(x, x) ** 2
    e = torch.exp(-d / t) * (1 - torch.eye(2 * n, dtype=D))
    lab = torch.arange(2 * n) % n
    same = (lab[:, None] == lab[None, :]).to(D)
    ratio = (e * same).sum(1) / e.sum(1)
    return -torch.log(1e-9 + ratio).mean()


def supcon(a, b, labels, t):
    n = a.shape[0]
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=1)
    logits = z @ z.T / t
    self_mask = torch.eye(2 * n, dtype=torch.bool)
    lab = torch.cat([labels, labels])
    pos = (lab[:, None] == lab[None, :]) & ~self_mask
    log_prob = logits - torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), 1, keepdim=True)
    per_anchor = (log_prob * pos).sum(1) / pos.sum(1)
    return -per_anchor.mean()


def labels_loss(s, v, labels, t):
    # cross-entropy against the victim's predicted class
    return torch.nn.functional.cross_entropy(s, v.argmax(dim=1))


def logits_loss(s, v, labels, t):
    # distillation: KL(softmax(v/T) || softmax(s/T)) * T^2, batch mean; the victim's entropy
    # is a constant, so the value compared is the cross-entropy part
    p = torch.softmax(v / t, dim=1)
    return -(p * torch.log_softmax(s / t, dim=1)).sum(1).mean() * t * t


LOSSES = {"labels": labels_loss, "logits": logits_loss, "mse": mse, "msewithhead": mse, "cosine": cosine, "wasserstein": wasserstein, "barlow": barlow,
          "symmetrized": symmetrized, "bce": bce, "infonce": infonce, "softnn": softnn,
          "supcon": supcon}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    out = {}
    for c in cases:
        shape = (c["rows"], c["d"])
        s = load(c["s"], "<f4", shape).to(D).requires_grad_(True)
        v = load(c["v"], "<f4", shape).to(D)
        labels = load(c["labels"], "<i8", (c["rows"],)) if c.get("labels") else None
        loss = LOSSES[c["loss"]](s, v, labels, c["temperature"])
        loss.backward()
        out[c["name"]] = {"loss": loss.item(), "grad_s": s.grad.flatten().tolist()}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

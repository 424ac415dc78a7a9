"""Reference values of the training losses, in float64 PyTorch, for train/loss_test.go.

Usage: losses_ref.py manifest.json
The manifest lists cases {name, loss, n, d, temperature, a, b, labels}; a and b are raw
little-endian float32 files (n x d), labels a raw int64 file (n) or "". Prints JSON
{name: {loss, grad_a, grad_b, naive_f32_finite}} on stdout. The formulas are written from the
papers / reference code, independently of the Go implementation:
  infonce: sthalles/SimCLR's info_nce_loss + nn.CrossEntropyLoss (NT-Xent).
  softnn:  Frosst et al. soft nearest neighbour, label(i) = i mod n, squared euclidean distance,
           loss_i = -log(1e-9 + sum_same / sum_all), diagonal excluded, naive exp.
  supcon:  HobbitLong/SupContrast SupConLoss (contrast_mode "all", base_temperature = temperature)
           on the L2-normalised views.
  ce:      nn.CrossEntropyLoss of each view's class scores on the labels, averaged.
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F


def info_nce(a, b, labels, T):
    n = a.shape[0]
    features = torch.cat([a, b], dim=0)
    lab = torch.cat([torch.arange(n) for _ in range(2)], dim=0)
    lab = (lab.unsqueeze(0) == lab.unsqueeze(1)).to(features.dtype)
    features = F.normalize(features, dim=1)
    sim = torch.matmul(features, features.T)
    mask = torch.eye(lab.shape[0], dtype=torch.bool)
    lab = lab[~mask].view(lab.shape[0], -1)
    sim = sim[~mask].view(sim.shape[0], -1)
    positives = sim[lab.bool()].view(lab.shape[0], -1)
    negatives = sim[~lab.bool()].view(sim.shape[0], -1)
    logits = torch.cat([positives, negatives], dim=1) / T
    target = torch.zeros(logits.shape[0], dtype=torch.long)
    return F.cross_entropy(logits, target)


def soft_nn(a, b, labels, T):
    n = a.shape[0]
    x = torch.cat([a, b], dim=0)
    lab = torch.arange(2 * n) % n
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    eye = torch.eye(2 * n, dtype=torch.bool)
    e = torch.exp(-d / T) * (~eye).to(x.dtype)
    same = ((lab[:, None] == lab[None, :]) & ~eye).to(x.dtype)
    all_ = e.sum(1)
    if x.dtype == torch.float64 and not bool((all_ > 0).all()):
        raise SystemExit("softnn reference: exp underflows even in float64; choose a smaller scale")
    ratio = (e * same).sum(1) / all_
    return -torch.log(1e-9 + ratio).mean()


def sup_con(a, b, labels, T):
    base_T = T
    features = torch.stack([F.normalize(a, dim=1), F.normalize(b, dim=1)], dim=1)  # bsz x views x d
    bsz = features.shape[0]
    labels = labels.contiguous().view(-1, 1)
    mask = torch.eq(labels, labels.T).to(features.dtype)
    contrast_count = features.shape[1]
    contrast_feature = torch.cat(torch.unbind(features, dim=1), dim=0)
    anchor_feature, anchor_count = contrast_feature, contrast_count
    anchor_dot_contrast = torch.div(torch.matmul(anchor_feature, contrast_feature.T), T)
    logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
    logits = anchor_dot_contrast - logits_max.detach()
    mask = mask.repeat(anchor_count, contrast_count)
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(bsz * anchor_count).view(-1, 1), 0)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1)
    loss = -(T / base_T) * mean_log_prob_pos
    return loss.view(anchor_count, bsz).mean()


def cross_entropy(a, b, labels, T):
    # The supervised victim (the seed's steallabels.py supervised model is trained with
    # nn.CrossEntropyLoss): a and b are class scores of two views, each scored on the labels.
    return 0.5 * (F.cross_entropy(a, labels) + F.cross_entropy(b, labels))


LOSSES = {"infonce": info_nce, "softnn": soft_nn, "supcon": sup_con, "ce": cross_entropy}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    out = {}
    for c in cases:
        n, d = c["n"], c["d"]
        a32 = torch.from_numpy(np.fromfile(c["a"], dtype="<f4").reshape(n, d).copy())
        b32 = torch.from_numpy(np.fromfile(c["b"], dtype="<f4").reshape(n, d).copy())
        labels = None
        if c["labels"]:
            labels = torch.from_numpy(np.fromfile(c["labels"], dtype="<i8").copy())
        fn = LOSSES[c["loss"]]
        a = a32.double().requires_grad_()
        b = b32.double().requires_grad_()
        loss = fn(a, b, labels, c["temperature"])
        loss.backward()
        with torch.no_grad():
            naive = fn(a32, b32, labels, c["temperature"])
        out[c["name"]] = {
            "loss": loss.item(),
            "grad_a": a.grad.flatten().tolist(),
            "grad_b": b.grad.flatten().tolist(),
            "naive_f32_finite": bool(torch.isfinite(naive).item()),
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

"""Reference for eval's linear probe and kNN monitor, in PyTorch (float64).

Usage: probe_ref.py DIR CONFIG_JSON [DIR CONFIG_JSON ...]
Each DIR holds xtr.npy, ytr.npy, xte.npy, yte.npy (float32) and perms.npy (epochs x N, the
row order of every epoch, float32). CONFIG_JSON has lr, wd, epochs, batch, standardize,
knn_k, knn_t, classes, and optionally optimizer (adam | sgd, default adam), momentum (sgd),
schedule (constant | cosine, default constant: cosine sets every epoch's lr as SimSiam's
main_lincls.py adjust_learning_rate does) and w0 (initial weights, row-major; default zeros).
Prints one JSON line per DIR: the probe's weights, bias, test predictions, train loss, and the
kNN's test predictions.
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit("usage: probe_ref.py DIR CONFIG_JSON [DIR CONFIG_JSON ...]")
    for i in range(0, len(args), 2):
        run(args[i], json.loads(args[i + 1]))


def run(d, cfg):
    xtr = np.load(d + "/xtr.npy").astype(np.float64)
    xte = np.load(d + "/xte.npy").astype(np.float64)
    ytr = torch.from_numpy(np.load(d + "/ytr.npy").astype(np.int64))
    perms = np.load(d + "/perms.npy").astype(np.int64)
    classes = int(cfg["classes"])

    # kNN monitor on the raw features (InstDisc-style weighted vote).
    tr = F.normalize(torch.from_numpy(xtr), dim=1)
    te = F.normalize(torch.from_numpy(xte), dim=1)
    k = min(int(cfg["knn_k"]), tr.shape[0])
    sim, idx = (te @ tr.T).topk(k, dim=1)
    w = (sim / cfg["knn_t"]).exp()
    votes = torch.zeros(te.shape[0], classes, dtype=torch.float64)
    votes.scatter_add_(1, ytr[idx], w)
    knn_pred = votes.argmax(dim=1)

    if cfg["standardize"]:
        mean = xtr.mean(axis=0)
        sd = xtr.std(axis=0)
        sd[sd == 0] = 1
        xtr = (xtr - mean) / sd
        xte = (xte - mean) / sd
    x = torch.from_numpy(xtr)
    lin = torch.nn.Linear(x.shape[1], classes).double()
    with torch.no_grad():
        lin.weight.zero_()
        if cfg.get("w0"):
            lin.weight.copy_(torch.tensor(cfg["w0"], dtype=torch.float64).view_as(lin.weight))
        lin.bias.zero_()
    optimizer = cfg.get("optimizer", "adam")
    if optimizer == "sgd":
        opt = torch.optim.SGD(lin.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["wd"])
    elif optimizer == "adam":
        opt = torch.optim.Adam(lin.parameters(), lr=cfg["lr"], weight_decay=cfg["wd"])
    else:
        sys.exit("unknown optimizer " + optimizer)
    schedule = cfg.get("schedule", "constant")
    if schedule not in ("constant", "cosine"):
        sys.exit("unknown schedule " + schedule)
    epochs, bs = int(cfg["epochs"]), int(cfg["batch"])
    for e in range(epochs):
        if schedule == "cosine":
            for g in opt.param_groups:
                g["lr"] = cfg["lr"] * 0.5 * (1. + math.cos(math.pi * e / epochs))
        order = torch.from_numpy(perms[e])
        for s in range(0, x.shape[0], bs):
            i = order[s:s + bs]
            loss = F.cross_entropy(lin(x[i]), ytr[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        train_loss = F.cross_entropy(lin(x), ytr).item()
        pred = lin(torch.from_numpy(xte)).argmax(dim=1)
    print(json.dumps({
        "w": lin.weight.detach().flatten().tolist(),
        "b": lin.bias.detach().tolist(),
        "pred": pred.tolist(),
        "train_loss": train_loss,
        "knn_pred": knn_pred.tolist(),
    }))


if __name__ == "__main__":
    main()

"""torch.optim reference trajectories for train/optim_test.go.

Usage: optim_ref.py cases.json
cases.json holds a list of cases {kind: adam|sgd|lars, weight_decay, momentum, lrs: [...], params: [{shape, values}], c1, c2}
torch.optim has no LARS: "lars" is computed here directly from its definition (SimSiam/MoCo v3's
LARS: weight decay and the trust ratio eta ||p|| / ||g|| on parameters of more than one
dimension only, then momentum SGD).
The loss is L = 0.5 * sum(c1 * p0 * p0) + sum(c2 * p1); params beyond the first two get no
gradient. Prints JSON: per case, per step, the list of flattened parameters after that step.
"""
import json
import sys

import torch


LARS_ETA = 0.001


def lars_step(ps, bufs, lr, wd, momentum):
    with torch.no_grad():
        for i, p in enumerate(ps):
            if p.grad is None:
                continue
            g = p.grad.clone()
            if p.ndim > 1:
                g = g + wd * p
                pn, gn = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                if pn > 0 and gn > 0:
                    g = g * (LARS_ETA * pn / gn)
            bufs[i] = g if bufs[i] is None else momentum * bufs[i] + g
            p -= lr * bufs[i]


def run(c):
    ps = [torch.tensor(p["values"], dtype=torch.float32).reshape(p["shape"]).requires_grad_() for p in c["params"]]
    c1 = torch.tensor(c["c1"], dtype=torch.float32).reshape(ps[0].shape)
    c2 = torch.tensor(c["c2"], dtype=torch.float32).reshape(ps[1].shape)
    opt, bufs = None, [None] * len(ps)
    if c["kind"] == "adam":
        opt = torch.optim.Adam(ps, lr=c["lrs"][0], weight_decay=c["weight_decay"])
    elif c["kind"] == "sgd":
        opt = torch.optim.SGD(ps, lr=c["lrs"][0], momentum=c["momentum"], weight_decay=c["weight_decay"])
    elif c["kind"] != "lars":
        raise ValueError("unknown optimiser kind %r" % c["kind"])
    out = []
    for lr in c["lrs"]:
        for p in ps:
            p.grad = None
        loss = 0.5 * (c1 * ps[0] * ps[0]).sum() + (c2 * ps[1]).sum()
        loss.backward()
        if opt is None:
            lars_step(ps, bufs, lr, c["weight_decay"], c["momentum"])
            out.append([p.detach().flatten().tolist() for p in ps])
            continue
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        out.append([p.detach().flatten().tolist() for p in ps])
    return out


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    json.dump([run(c) for c in cases], sys.stdout)


if __name__ == "__main__":
    main()

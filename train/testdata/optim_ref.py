"""torch.optim reference trajectories for train/optim_test.go.

Usage: optim_ref.py cases.json
cases.json holds a list of cases {kind: adam|sgd, weight_decay, momentum, lrs: [...], params: [{shape, values}], c1, c2}
The loss is L = 0.5 * sum(c1 * p0 * p0) + sum(c2 * p1); params beyond the first two get no
gradient. Prints JSON: per case, per step, the list of flattened parameters after that step.
"""
import json
import sys

import torch


def run(c):
    ps = [torch.tensor(p["values"], dtype=torch.float32).reshape(p["shape"]).requires_grad_() for p in c["params"]]
    c1 = torch.tensor(c["c1"], dtype=torch.float32).reshape(ps[0].shape)
    c2 = torch.tensor(c["c2"], dtype=torch.float32).reshape(ps[1].shape)
    if c["kind"] == "adam":
        opt = torch.optim.Adam(ps, lr=c["lrs"][0], weight_decay=c["weight_decay"])
    else:
        opt = torch.optim.SGD(ps, lr=c["lrs"][0], momentum=c["momentum"], weight_decay=c["weight_decay"])
    out = []
    for lr in c["lrs"]:
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        loss = 0.5 * (c1 * ps[0] * ps[0]).sum() + (c2 * ps[1]).sum()
        loss.backward()
        opt.step()
        out.append([p.detach().flatten().tolist() for p in ps])
    return out


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    json.dump([run(c) for c in cases], sys.stdout)


if __name__ == "__main__":
    main()

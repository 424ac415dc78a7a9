"""One step of the reference's symmetrized steal, written from the seed's code.

The model is the seed's models/resnet_simclr.py SimSiam(torchvision resnet18, dim, out_dim)
as its steal.py builds it for --losstype symmetrized (dim = out_dim = 512, SGD with momentum
0.9 and weight decay 1e-4), and the loss is its simclr.py steal loop's:
p1, p2 = model(x1, x2); z1 = model.encoder.fc(victim(x1)); z2 = model.encoder.fc(victim(x2));
loss = -(cos(p1, z2).mean() + cos(p2, z1).mean()) * 0.5.

Usage: simsiam_ref.py dir. dir/case.json names the weights (raw float32 files, torchvision
names as ssl-onnx saves them: the encoder's, fc.* for the projector, predictor.*), the two
views' images and the victim's answers. Prints the loss before the step and the listed
tensors after it, as JSON.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

torch.set_num_threads(1)


class SimSiam(nn.Module):
    # the seed's models/resnet_simclr.py SimSiam
    def __init__(self, base_encoder, dim=512, out_dim=512):
        super().__init__()
        self.encoder = base_encoder(num_classes=dim, zero_init_residual=True)
        prev_dim = self.encoder.fc.weight.shape[1]
        self.encoder.fc = nn.Sequential(nn.Linear(prev_dim, prev_dim, bias=False),
                                        nn.BatchNorm1d(prev_dim),
                                        nn.ReLU(inplace=True),
                                        nn.Linear(prev_dim, prev_dim, bias=False),
                                        nn.BatchNorm1d(prev_dim),
                                        nn.ReLU(inplace=True),
                                        self.encoder.fc,
                                        nn.BatchNorm1d(dim, affine=False))
        self.encoder.fc[6].bias.requires_grad = False
        self.predictor = nn.Sequential(nn.Linear(dim, out_dim, bias=False),
                                       nn.BatchNorm1d(out_dim),
                                       nn.ReLU(inplace=True),
                                       nn.Linear(out_dim, dim))

    def forward(self, x1, x2):
        z1 = self.encoder(x1)
        z2 = self.encoder(x2)
        p1 = self.predictor(z1)
        p2 = self.predictor(z2)
        return p1, p2, z1.detach(), z2.detach()


def load(d, name, shape):
    return torch.from_numpy(np.fromfile(os.path.join(d, name), dtype="<f4").reshape(shape).copy())


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "case.json")) as f:
        c = json.load(f)
    model = SimSiam(torchvision.models.resnet18, c["dim"], c["dim"])
    sd = {}
    for w in c["weights"]:
        key = w["name"] if w["name"].startswith("predictor.") else "encoder." + w["name"]
        sd[key] = load(d, w["file"], w["shape"])
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    assert not missing and not unexpected, (missing, unexpected)
    n, hw = c["n"], c["hw"]
    x = load(d, "x.f32", (2 * n, 3, hw, hw))
    y = load(d, "y.f32", (2 * n, c["dim"]))
    x1, x2, y1, y2 = x[:n], x[n:], y[:n], y[n:]
    opt = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=0.9, weight_decay=c["wd"])
    model.train()
    criterion = nn.CosineSimilarity(dim=1)
    p1, p2, _, _ = model(x1, x2)
    z1 = model.encoder.fc(y1)
    z2 = model.encoder.fc(y2)
    loss = -(criterion(p1, z2).mean() + criterion(p2, z1).mean()) * 0.5
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = {}
    state = model.state_dict()
    for name in c["after"]:
        key = name if name.startswith("predictor.") else "encoder." + name
        after[name] = state[key].flatten().tolist()
    json.dump({"loss": loss.item(), "after": after}, sys.stdout)


if __name__ == "__main__":
    main()

"""Reference for watermark.Rotate: torchvision's F.rotate (bilinear, zero fill, no expand).

usage: rotate_ref.py CASES.json -> JSON {"torchvision": version, "out": [[[...] per angle] per case]}
CASES.json is a list of {"path": file of C*H*W little-endian float32 (CHW), "c", "h", "w",
"angles": [...]}.
"""
import json
import sys

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

out = []
for case in json.load(open(sys.argv[1])):
    c, h, w = case["c"], case["h"], case["w"]
    img = torch.from_numpy(np.fromfile(case["path"], dtype="<f4").reshape(c, h, w).copy())
    rotated = []
    for a in case["angles"]:
        r = F.rotate(img, float(a), interpolation=InterpolationMode.BILINEAR)
        rotated.append([float(v) for v in r.reshape(-1).tolist()])
    out.append(rotated)
json.dump({"torchvision": torchvision.__version__, "out": out}, sys.stdout)

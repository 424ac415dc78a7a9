"""Reference outputs for the augment package's cross-check test.

Usage: torchvision_ref.py DIR. Reads DIR/spec.json, applies the listed
torchvision.transforms.functional ops to raw float32 CHW inputs and writes each
result to DIR/<case name>.bin as raw little-endian float32.
"""
import json
import os
import sys

import numpy as np
import torch
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode


def load(d, spec):
    a = np.fromfile(os.path.join(d, spec["file"]), dtype="<f4")
    return torch.from_numpy(a.reshape(3, spec["h"], spec["w"]).copy())


def resized_crop(img, a):
    return F.resized_crop(img, a["top"], a["left"], a["ch"], a["cw"], [a["size"], a["size"]],
                          InterpolationMode.BILINEAR, antialias=False)


def jitter(img, op, a):
    if op == 0 and a.get("brightness") is not None:
        return F.adjust_brightness(img, a["brightness"])
    if op == 1 and a.get("contrast") is not None:
        return F.adjust_contrast(img, a["contrast"])
    if op == 2 and a.get("saturation") is not None:
        return F.adjust_saturation(img, a["saturation"])
    if op == 3 and a.get("hue") is not None:
        return F.adjust_hue(img, a["hue"])
    return img


def plan(img, a):
    img = resized_crop(img, a)
    if a["flip"]:
        img = F.hflip(img)
    if a["jitter"]:
        for op in a["order"]:
            img = jitter(img, op, a)
    if a["gray"]:
        img = F.rgb_to_grayscale(img, num_output_channels=3)
    if a["k"] > 1:
        img = F.gaussian_blur(img, [a["k"], a["k"]], [a["sigma"], a["sigma"]])
    if a.get("mean") is not None:
        img = F.normalize(img, a["mean"], a["std"])
    return img


OPS = {
    "resized_crop": resized_crop,
    "brightness": lambda img, a: F.adjust_brightness(img, a["f"]),
    "contrast": lambda img, a: F.adjust_contrast(img, a["f"]),
    "saturation": lambda img, a: F.adjust_saturation(img, a["f"]),
    "hue": lambda img, a: F.adjust_hue(img, a["f"]),
    "blur": lambda img, a: F.gaussian_blur(img, [a["k"], a["k"]], [a["sigma"], a["sigma"]]),
    "hflip": lambda img, a: F.hflip(img),
    "gray": lambda img, a: F.rgb_to_grayscale(img, num_output_channels=3),
    "plan": plan,
}


def crop_stats(h, w, n, scale, ratio):
    """Mean area fraction, mean log aspect ratio, std of the area fraction and the
    fraction of draws equal to the fallback window, over n draws of get_params."""
    import math
    from torchvision.transforms import RandomResizedCrop

    img = torch.zeros(3, h, w)
    in_ratio = w / h
    if in_ratio < min(ratio):
        fw, fh = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        fh, fw = h, int(round(h * max(ratio)))
    else:
        fw, fh = w, h
    fallback = ((h - fh) // 2, (w - fw) // 2, fh, fw)
    fr, lr, fb = [], [], 0
    for _ in range(n):
        p = RandomResizedCrop.get_params(img, scale, ratio)
        fr.append(p[2] * p[3] / (h * w))
        lr.append(math.log(p[3] / p[2]))
        fb += p == fallback
    fr = np.array(fr)
    return np.array([fr.mean(), np.mean(lr), fr.std(), fb / n], dtype="<f4")


def main():
    torch.set_num_threads(1)
    d = sys.argv[1]
    with open(os.path.join(d, "spec.json")) as f:
        spec = json.load(f)
    inputs = {name: load(d, s) for name, s in spec["inputs"].items()}
    for case in spec["cases"]:
        out = OPS[case["op"]](inputs[case["input"]].clone(), case["args"])
        out.contiguous().numpy().astype("<f4").tofile(os.path.join(d, case["name"] + ".bin"))
    torch.manual_seed(0)
    for st in spec.get("stats", []):
        crop_stats(st["h"], st["w"], st["n"], st["scale"], st["ratio"]).tofile(os.path.join(d, st["name"] + ".bin"))


if __name__ == "__main__":
    main()

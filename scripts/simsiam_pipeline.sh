#!/usr/bin/env bash
# The reference's ImageNet pipeline (stealsimsiam.py + linsimsiam.py) end to end, small:
#   1. a SimSiam checkpoint as SimSiam's training script writes it (here PyTorch writes a
#      randomly initialised one: pass CKPT=checkpoint_0099.pth.tar to use a real one);
#   2. an ImageNet-style image folder (class sub-folders of PNGs; here Fashion-MNIST images:
#      pass IMAGES=dir with train/ and test/ inside to use real images);
#   3. ssl-onnx import -> the 2048-d ResNet-50 victim (ImageNet normalisation in its metadata);
#   4. ssl-onnx steal from the folder at 224 px, SGD/LARS with lr = base-lr x batch / 256;
#   5. ssl-onnx eval with the SGD + cosine probe, features in inference mode.
# Sizes are environment variables (QUERIES, EPOCHS, BATCH, PER_CLASS); the defaults take a few
# minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/ssl-onnx}
w=${WORK:-runs/simsiam}
queries=${QUERIES:-256}
epochs=${EPOCHS:-1}
batch=${BATCH:-32}
per=${PER_CLASS:-30}
py=/usr/bin/python3
mkdir -p "$w"
ckpt=${CKPT:-$w/checkpoint_0099.pth.tar}
if [ ! -f "$ckpt" ]; then
  $py models/pth/testdata/write_checkpoint.py "$ckpt" simsiam 224
fi
images=${IMAGES:-$w/images}
if [ ! -d "$images/train" ]; then
  $py - "$images" "$per" <<'PY'
import gzip, os, sys
import numpy as np
from PIL import Image
out, per = sys.argv[1], int(sys.argv[2])
src = "/usr/share/datasets/fashion-mnist"
def idx(name, off):
    with gzip.open(os.path.join(src, name)) as f:
        return np.frombuffer(f.read(), np.uint8, offset=off)
for split, pre in (("train", "train"), ("test", "t10k")):
    x = idx(pre + "-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y = idx(pre + "-labels-idx1-ubyte.gz", 8)
    for c in range(10):
        d = os.path.join(out, split, "class%d" % c)
        os.makedirs(d, exist_ok=True)
        for k, i in enumerate(np.flatnonzero(y == c)[:per]):
            Image.fromarray(x[i]).save(os.path.join(d, "%04d.png" % k))
print("wrote", out)
PY
fi
"$bin" import --pth "$ckpt" --arch resnet50 --size 224 --out "$w/victim.onnx"
"$bin" steal --victim "$w/victim.onnx" --query-dataset folder --query-data "$images" --query-split train \
  --num-queries "$queries" --arch resnet50 --stem imagenet --size 224 --loss mse \
  --optimizer lars --base-lr 0.1 --batch-size "$batch" --epochs "$epochs" --out "$w/stolen"
"$bin" export --checkpoint "$w/stolen" --out "$w/stolen.onnx"
"$bin" eval --model "$w/stolen.onnx" --reference "$w/victim.onnx" --dataset folder --data "$images" \
  --simsiam-probe --baselines pixels --out "$w/eval.json"

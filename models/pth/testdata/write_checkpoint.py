# Writes a PyTorch checkpoint of a torchvision ResNet and the representations of a fixed
# input, for the import tests and scripts/simsiam_pipeline.sh (Debian's python3-torch and
# python3-torchvision).
#   write_checkpoint.py OUT simsiam|mocov2|resnet18 SIZE
# simsiam: SimSiam's builder (ResNet-50 encoder, 3-layer projector, predictor; dim 128 and
#   pred_dim 32 to keep the file small) saved as SimSiam's training script saves it:
#   {"epoch", "arch", "state_dict" (keys module.encoder.* / module.predictor.*), "optimizer"}.
# mocov2: MoCo v2's builder with the MLP head on a ResNet-18 (dim 128, a queue of 64 keys) saved
#   as MoCo's training script saves it: state_dict keys module.encoder_q.*, module.encoder_k.*,
#   module.queue, module.queue_ptr.
# resnet18: a DataParallel torchvision ResNet-18 classifier state dict, legacy (pre-zip) format.
# Batch-norm statistics and affine parameters are randomised so that inference mode matters.
# OUT.x and OUT.h get 2 random inputs and their pooled representations (raw float32).
import sys, torch, torch.nn as nn, torchvision
torch.manual_seed(0)
out, kind, hw = sys.argv[1], sys.argv[2], int(sys.argv[3])
def randomize_bn(m):
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
            if mod.affine:
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.2, 0.2)
            mod.num_batches_tracked.fill_(7)
if kind == "simsiam":
    # SimSiam's builder (dim 128, pred_dim 32 to keep the file small), wrapped as DDP saves it.
    dim, pred = 128, 32
    enc = torchvision.models.resnet50(num_classes=dim, zero_init_residual=True)
    prev = enc.fc.weight.shape[1]
    enc.fc = nn.Sequential(nn.Linear(prev, prev, bias=False), nn.BatchNorm1d(prev), nn.ReLU(inplace=True),
                           nn.Linear(prev, prev, bias=False), nn.BatchNorm1d(prev), nn.ReLU(inplace=True),
                           enc.fc, nn.BatchNorm1d(dim, affine=False))
    enc.fc[6].bias.requires_grad = False
    predictor = nn.Sequential(nn.Linear(dim, pred, bias=False), nn.BatchNorm1d(pred), nn.ReLU(inplace=True), nn.Linear(pred, dim))
    model = nn.ModuleDict({"encoder": enc, "predictor": predictor})
    randomize_bn(model)
    sd = {"module." + k: v for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    torch.save({"epoch": 100, "arch": "resnet50", "state_dict": sd, "optimizer": opt.state_dict()}, out)
elif kind == "mocov2":
    def build():
        e = torchvision.models.resnet18(num_classes=128)
        d = e.fc.weight.shape[1]
        e.fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(), e.fc)
        return e
    enc, key = build(), build()
    randomize_bn(enc)
    key.load_state_dict(enc.state_dict())
    sd = {"module.encoder_q." + k: v for k, v in enc.state_dict().items()}
    sd.update({"module.encoder_k." + k: v for k, v in key.state_dict().items()})
    sd["module.queue"] = nn.functional.normalize(torch.randn(128, 64), dim=0)
    sd["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    opt = torch.optim.SGD(enc.parameters(), lr=0.03, momentum=0.9)
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": sd, "optimizer": opt.state_dict()}, out)
else:
    # A DataParallel torchvision ResNet-18 classifier, saved in the legacy (pre-zip) format.
    enc = torchvision.models.resnet18(num_classes=10)
    randomize_bn(enc)
    sd = {"module." + k: v for k, v in enc.state_dict().items()}
    torch.save(sd, out, _use_new_zipfile_serialization=False)
enc.eval()
x = torch.rand(2, 3, hw, hw)
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
with torch.no_grad():
    h = nn.Sequential(*list(enc.children())[:-1])(x).flatten(1)
open(out + ".x", "wb").write(x.numpy().tobytes())
open(out + ".h", "wb").write(h.numpy().tobytes())

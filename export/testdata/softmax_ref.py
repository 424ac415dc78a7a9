# The seed's entropy victim: ResNetSimCLR(entropy=True).forward returns
# F.softmax(self.backbone(x), dim=1). Given the plain model's scores (raw float32, n x d), compute
# that, and check the softmax ONNX file with onnx.checker.
import json, sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F

scores_path, n, d, model_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
scores = torch.from_numpy(np.fromfile(scores_path, dtype="<f4").reshape(n, d))
m = onnx.load(model_path)
onnx.checker.check_model(m, full_check=True)
md = {e.key: e.value for e in m.metadata_props}
print(json.dumps({"softmax": F.softmax(scores, dim=1).flatten().tolist(),
                  "activation": md.get("output_activation", ""), "output": m.graph.output[0].name}))

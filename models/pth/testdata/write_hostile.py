# Writes the hostile checkpoints of TestHostileCheckpoints into the folder given as argv[1]
# and prints their names as JSON:
#   strided.pth  - a 1-element storage viewed as 2^31 elements with stride 0 (8 GB if expanded)
#   legacy.pth   - an old-format (pre-zip) file whose storage declares 2^40 elements
import json, sys, torch

d = sys.argv[1]
torch.save({"w": torch.zeros(1).as_strided((2**31,), (0,))}, d + "/strided.pth")
torch.save({"w": torch.zeros(4)}, d + "/legacy.pth", _use_new_zipfile_serialization=False)
b = bytearray(open(d + "/legacy.pth", "rb").read())
# The legacy format writes each storage as an 8-byte little-endian element count, then the
# data; the only storage's count (4) is the last such field before the 16 data bytes.
i = len(b) - 16 - 8
assert int.from_bytes(b[i:i + 8], "little") == 4, "unexpected legacy layout"
b[i:i + 8] = (2**40).to_bytes(8, "little")
open(d + "/legacy.pth", "wb").write(bytes(b))
print(json.dumps(["strided.pth", "legacy.pth"]))

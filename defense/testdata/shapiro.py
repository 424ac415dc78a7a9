"""Reference Shapiro-Wilk values for defense/shapiro_test.go.

Reads a JSON list of samples (lists of floats) from argv[1] and prints a JSON list of
[W, p] computed by scipy.stats.shapiro, one per sample.
"""
import json
import sys

import scipy
from scipy import stats

with open(sys.argv[1]) as f:
    samples = json.load(f)
out = []
for s in samples:
    r = stats.shapiro(s)
    out.append([float(r[0]), float(r[1])])
print(json.dumps({"scipy": scipy.__version__, "results": out}))

"""Reference for watermark.OneSampleTTest: scipy.stats.ttest_1samp(x, mu, alternative="greater").

usage: ttest_ref.py CASES.json  (a list of {"x": [...], "mu": m}) -> JSON [{"t": t, "p": p}, ...]
"""
import json
import sys

import scipy
from scipy import stats

cases = json.load(open(sys.argv[1]))
res = []
for c in cases:
    r = stats.ttest_1samp(c["x"], c["mu"], alternative="greater")
    res.append({"t": float(r.statistic), "p": float(r.pvalue)})
json.dump({"scipy": scipy.__version__, "results": res}, sys.stdout)

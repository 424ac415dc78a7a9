"""Replace the bodies of gotch's generated C++ wrappers that do not compile.

Usage: stub_wrappers.py torch_api_generated.cpp.h LINE [LINE ...]
Each LINE is a compiler error line; the wrapper function containing it gets a body that
raises a libtorch-style error at call time. Prints how many functions were stubbed.
"""
import re
import sys

path, lines = sys.argv[1], sorted({int(x) for x in sys.argv[2:]})
src = open(path).read().split("\n")
stubbed = 0
done = set()
for ln in lines:
    i = ln - 1
    start = i
    while start > 0 and not re.match(r"^\w", src[start]):
        start -= 1
    if start in done:
        continue
    end = start
    while end < len(src) and src[end] != "}":
        end += 1
    header = src[start]
    name = re.search(r"(\w+)\(", header).group(1)
    ret = header.split(name)[0].strip()
    body = ['  PROTECT(throw std::runtime_error("%s is not available in this libtorch");)' % name]
    if ret != "void":
        body.append("  return 0;")
    # keep the header line(s) up to and including the opening brace
    hdr_end = start
    while "{" not in src[hdr_end]:
        hdr_end += 1
    src[hdr_end + 1:end] = body + [""] * ((end - hdr_end - 1) - len(body))
    done.add(start)
    stubbed += 1
open(path, "w").write("\n".join(src))
print(stubbed)

#!/usr/bin/env bash
# setup.sh - prepare a Debian machine to build and test ssl-onnx.
#
# Idempotent: a second run on a ready machine checks and changes nothing.
#   - Debian packages: libtorch (training), g++, Fashion-MNIST (default data), Python
#     cross-check stack (torch, torchvision, onnx, scipy) and OpenBLAS.
#   - gotch v0.9.1, fetched through the Go module proxy and patched in .deps/gotch for the
#     installed libtorch (go.mod points at it with a replace directive).
#   - ONNX Runtime 1.30.0 CPU library, taken out of the onnxruntime-node npm package into
#     .deps/onnxruntime.
# Environment:
#   LIBTORCH=/path/to/libtorch  use an upstream libtorch (e.g. 2.1 with CUDA) instead of Debian's.
#   LIBTORCH_CXX11_ABI=0|1      ABI of that build (default 1).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEPS="$ROOT/.deps"
GOTCH_VERSION=v0.9.1
ORT_VERSION=1.30.0
APT_PACKAGES=(libtorch-dev g++ dataset-fashion-mnist python3-torch python3-torchvision python3-onnx python3-scipy libopenblas0-pthread unzip postgresql)

say()  { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }
start=$(date +%s)
installed=()

# --- Preconditions -------------------------------------------------------------------------
command -v go >/dev/null || fail "the Go toolchain is not on PATH (need Go 1.26)"
free_mb=$(df -Pm "$ROOT" | awk 'NR==2 {print $4}')
if [ ! -f "$DEPS/.ready" ] && [ "${free_mb:-0}" -lt 3000 ]; then
  fail "disk full: ${free_mb} MB free under $ROOT, need about 3000 MB (libtorch, ONNX Runtime, build cache)"
fi

# --- Debian packages -----------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  [ -n "${LIBTORCH:-}" ] && [ "$p" = libtorch-dev ] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail "apt-get not found: install these packages by hand: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || fail "not root and no sudo: cannot apt-get install ${missing[*]}"
    SUDO="sudo"
  fi
  say "installing Debian packages: ${missing[*]}"
  # PostgreSQL is for the store's tests, which start their own server in a temporary folder:
  # ask Debian's package not to create (and start) a system cluster.
  if [[ " ${missing[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.d/ssl-onnx.conf ]; then
    $SUDO mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/ssl-onnx.conf >/dev/null
  fi
  $SUDO apt-get update -qq || fail "apt-get update failed (no network or no apt sources?)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null \
    || fail "apt-get install ${missing[*]} failed"
  installed+=("apt: ${missing[*]}")
fi

# --- gotch ---------------------------------------------------------------------------------
# The stamp records what the copy was patched for; a different LIBTORCH re-patches it.
stamp="gotch=$GOTCH_VERSION libtorch=${LIBTORCH:-debian} abi=${LIBTORCH_CXX11_ABI:-1} patch=9"
if [ "$(cat "$DEPS/gotch/.ssl-onnx-patched" 2>/dev/null)" != "$stamp" ]; then
  say "fetching gotch $GOTCH_VERSION through the Go module proxy"
  src=$(cd "$ROOT" && GOFLAGS=-mod=mod go mod download -json "github.com/sugarme/gotch@$GOTCH_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || fail "go mod download github.com/sugarme/gotch@$GOTCH_VERSION gave no source folder"
  rm -rf "$DEPS/gotch.tmp"
  mkdir -p "$DEPS"
  cp -r "$src" "$DEPS/gotch.tmp"
  chmod -R u+w "$DEPS/gotch.tmp"
  lib="$DEPS/gotch.tmp/libtch"
  if [ -n "${LIBTORCH:-}" ]; then
    [ -d "$LIBTORCH/include" ] && [ -d "$LIBTORCH/lib" ] || fail "LIBTORCH=$LIBTORCH has no include/ and lib/"
    inc="-I$LIBTORCH/include -I$LIBTORCH/include/torch/csrc/api/include"
    libs="-L$LIBTORCH/lib -Wl,-rpath,$LIBTORCH/lib -lstdc++ -ltorch -lc10 -ltorch_cpu"
    [ -e "$LIBTORCH/lib/libtorch_cuda.so" ] && libs="$libs -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed"
    abi=${LIBTORCH_CXX11_ABI:-1}
  else
    inc="-I/usr/include/torch/csrc/api/include"
    libs="-lstdc++ -ltorch -lc10 -ltorch_cpu"
    abi=1
  fi
  cat > "$lib/lib.go" <<GO
package libtch

// Rewritten by ssl-onnx scripts/setup.sh for the libtorch on this machine.

// #cgo LDFLAGS: $libs
// #cgo CFLAGS: -I\${SRCDIR} -O3 -w -D_GLIBCXX_USE_CXX11_ABI=$abi $inc
// #cgo CXXFLAGS: -std=c++17 -I\${SRCDIR} -O3 -w -D_GLIBCXX_USE_CXX11_ABI=$abi $inc
import "C"
GO
  # gotch's in-place ops (relu_, add_, ...) point the Go tensor at the new handle that libtorch
  # returns without freeing the old one, which still references the storage: every in-place op
  # on a temporary leaked the whole tensor (the in-place ReLU of a training step leaked all its
  # activations, 24 GB in two epochs). Free the old handle first.
  gen="$DEPS/gotch.tmp/ts/tensor-generated.go"
  n=$(grep -c '^  ts.ctensor = \*ptr$' "$gen" || true)
  [ "$n" -gt 0 ] || fail "gotch $GOTCH_VERSION: no in-place op found in ts/tensor-generated.go to fix (did its layout change?)"
  sed -i 's/^  ts\.ctensor = \*ptr$/  lib.AtFree(ts.ctensor)\n  ts.ctensor = *ptr/' "$gen"
  say "fixed $n in-place ops that leaked their tensor's previous handle"
  # gotch's pickle reader allocates every storage at the element count the file declares
  # (8 bytes in a legacy file, a pickled int in a zip) before reading a byte of it: a 738-byte
  # file could ask for terabytes and kill the process with a fatal out-of-memory that no
  # recover catches. Bound the count before the allocation.
  pk="$DEPS/gotch.tmp/pickle/storage.go"
  n=$(grep -c '^	data := make(\[\][a-zA-Z0-9.]*, size)$' "$pk" || true)
  [ "$n" -ge 8 ] || fail "gotch $GOTCH_VERSION: found $n storage allocations in pickle/storage.go to bound (did its layout change?)"
  sed -i 's/^\tdata := make(\[\]\([a-zA-Z0-9.]*\), size)$/\tif err := checkStorageSize(size); err != nil {\n\t\treturn err\n\t}\n\tdata := make([]\1, size)/' "$pk"
  cat > "$DEPS/gotch.tmp/pickle/sslonnx_limits.go" <<'GO'
package pickle

// Added by ssl-onnx scripts/setup.sh: a bound on storage sizes read from a file.

import "fmt"

// MaxStorageElements is the largest storage a checkpoint may declare: 2^28 elements (1 GiB of
// float32), above any single tensor of the models this toolkit reads.
const MaxStorageElements = 1 << 28

func checkStorageSize(size int) error {
	if size < 0 || size > MaxStorageElements {
		return fmt.Errorf("pickle: a storage declares %d elements: expected 0..%d (corrupt or hostile file)", size, MaxStorageElements)
	}
	return nil
}
GO
  say "bounded $n storage allocations of gotch's pickle reader"
  # Its legacy loader meets io.EOF of an empty (or tar-only) file with a bare `break`, which
  # leaves the switch, not the loop: an empty .pth spun forever. End the load with an error.
  sz="$DEPS/gotch.tmp/pickle/serialization.go"
  grep -q '^		case io.EOF:$' "$sz" || fail "gotch $GOTCH_VERSION: pickle/serialization.go has no legacy EOF case to fix (did its layout change?)"
  sed -i 's|^			break // End of archive$|			return nil, fmt.Errorf("%s: empty, or a tar archive without a checkpoint: not a torch.save file", filename)|' "$sz"
  grep -q 'not a torch.save file", filename)' "$sz" || fail "gotch $GOTCH_VERSION: could not patch the legacy loader's endless loop"
  cat > "$lib/sslonnx_extra.go" <<'GO'
package libtch

// Added by ssl-onnx scripts/setup.sh: wrappers for C functions gotch declares but does not expose.

//#include <stdbool.h>
//#include <stdint.h>
//#include "torch_api.h"
import "C"

// AtManualSeed seeds libtorch's global random generators.
func AtManualSeed(seed int64) { C.at_manual_seed(C.int64_t(seed)) }

// AtGetNumThreads returns libtorch's intra-op thread count.
func AtGetNumThreads() int { return int(C.at_get_num_threads()) }

// AtSetNumThreads sets libtorch's intra-op thread count.
func AtSetNumThreads(n int) { C.at_set_num_threads(C.int(n)) }

// AtSetGradEnabled sets autograd's grad mode on the calling OS thread and returns the previous
// mode (gotch's own GradSetEnabled reads the C int as a Go int, so its answer is garbage).
func AtSetGradEnabled(on bool) bool {
	b := C.int(0)
	if on {
		b = 1
	}
	return C.at_grad_set_enabled(b) == 1
}
GO
  # Mixed precision as torch.autocast does it: gotch exposes no autocast, so enter and leave
  # libtorch's autocast state (per thread, like grad mode) through two C functions.
  cat > "$lib/sslonnx_autocast.cpp" <<'CPP'
// Added by ssl-onnx scripts/setup.sh: torch.autocast's enter and exit, for one device type.
#include <ATen/autocast_mode.h>

extern "C" void sslonnx_autocast_enter(int cuda) {
  if (cuda) {
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
  at::autocast::increment_nesting();
}

extern "C" void sslonnx_autocast_exit(int cuda) {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (cuda) at::autocast::set_enabled(false); else at::autocast::set_cpu_enabled(false);
}
CPP
  cat > "$lib/sslonnx_autocast.go" <<'GO'
package libtch

// Added by ssl-onnx scripts/setup.sh (with sslonnx_autocast.cpp).

// void sslonnx_autocast_enter(int cuda);
// void sslonnx_autocast_exit(int cuda);
import "C"

// AtAutocast enters (on) or leaves libtorch's bf16 autocast on the calling OS thread for CPU
// or CUDA tensors, as torch.autocast(device_type, torch.bfloat16) does; leaving the outermost
// one clears the cache of weights cast during it.
func AtAutocast(cuda, on bool) {
	c := C.int(0)
	if cuda {
		c = 1
	}
	if on {
		C.sslonnx_autocast_enter(c)
	} else {
		C.sslonnx_autocast_exit(c)
	}
}
GO
  # Wrappers generated for libtorch 2.1 that the installed libtorch lacks are replaced by
  # stubs that raise a libtorch error when called. Found by compiling, so it adapts to any version.
  say "checking gotch's C++ wrappers against the installed libtorch (about a minute)"
  for pass in 1 2 3; do
    # shellcheck disable=SC2086
    errs=$(cd "$lib" && g++ -std=c++17 -fsyntax-only -fmax-errors=0 -w -D_GLIBCXX_USE_CXX11_ABI=$abi -I. $inc torch_api.cpp 2>&1 \
           | sed -n 's/^torch_api_generated\.cpp\.h:\([0-9]*\):[0-9]*: error:.*/\1/p' | sort -un | tr '\n' ' ') || true
    [ -z "$errs" ] && break
    n=$(/usr/bin/python3 "$ROOT/scripts/stub_wrappers.py" "$lib/torch_api_generated.cpp.h" $errs)
    say "pass $pass: stubbed $n wrappers missing from this libtorch"
  done
  # shellcheck disable=SC2086
  (cd "$lib" && g++ -std=c++17 -fsyntax-only -w -D_GLIBCXX_USE_CXX11_ABI=$abi -I. $inc torch_api.cpp) \
    || fail "gotch's torch_api.cpp still does not compile against the installed libtorch (see errors above)"
  echo "$stamp" > "$DEPS/gotch.tmp/.ssl-onnx-patched"
  rm -rf "$DEPS/gotch"
  mv "$DEPS/gotch.tmp" "$DEPS/gotch"
  installed+=("gotch $GOTCH_VERSION (patched for ${LIBTORCH:-Debian libtorch}) in .deps/gotch")
fi

# --- ONNX Runtime --------------------------------------------------------------------------
ortlib="$DEPS/onnxruntime/libonnxruntime.so.$ORT_VERSION"
if [ ! -s "$ortlib" ]; then
  command -v npm >/dev/null || fail "npm not found: it is needed to fetch onnxruntime-node@$ORT_VERSION (apt-get install npm)"
  say "fetching ONNX Runtime $ORT_VERSION (npm package onnxruntime-node, ~113 MB)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null) \
    || fail "npm pack onnxruntime-node@$ORT_VERSION failed (no npm registry access?)"
  tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
    || fail "onnxruntime-node@$ORT_VERSION has no bin/napi-v6/linux/x64/libonnxruntime.so.1"
  mkdir -p "$DEPS/onnxruntime"
  mv "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ortlib.tmp"
  mv "$ortlib.tmp" "$ortlib"
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$DEPS/onnxruntime/libonnxruntime.so"
  installed+=("ONNX Runtime $ORT_VERSION CPU library in .deps/onnxruntime")
fi

# --- compile the native wrappers ------------------------------------------------------------
# gotch's C++ wrapper takes minutes to compile from an empty Go cache; doing it here keeps that
# out of the first `make demo` (seconds when the cache is warm).
if ! go build -o /dev/null ./cmd/ssl-onnx 2>"$DEPS/build.log"; then
  cat "$DEPS/build.log" >&2
  fail "the first build failed (errors above)"
fi

touch "$DEPS/.ready"
if [ ${#installed[@]} -eq 0 ]; then
  say "everything already in place ($(( $(date +%s) - start )) s)"
else
  for i in "${installed[@]}"; do say "installed $i"; done
  say "done in $(( $(date +%s) - start )) s"
fi

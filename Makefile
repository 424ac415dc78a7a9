# ssl-onnx: the two commands a newcomer needs are `make demo` and `make test`.
# Both run `make setup` first (idempotent: a ready machine is checked in seconds).

GO      ?= go
BIN     := bin/ssl-onnx
export CGO_ENABLED := 1

.PHONY: setup build test test-short demo bench fuzz soak clean

setup:
	@bash scripts/setup.sh

build: setup
	$(GO) build -o $(BIN) ./cmd/ssl-onnx

test: build
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

# The inner loop: every package's tests minus the end-to-end runs and heavy cross-checks.
test-short: build
	$(GO) test -short -count=1 ./...

demo: build
	./$(BIN) demo

bench: build
	./$(BIN) bench

# The API under 64 concurrent clients for SOAK_SECONDS (default 60), then kill -9 under load;
# the report goes to runs/soak.md (make test runs the same test for 5 s).
SOAK_SECONDS ?= 60
soak: build
	@mkdir -p runs
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_REPORT=$(CURDIR)/runs/soak.md $(GO) test -count=1 -run '^TestSoak$$' -v -timeout 30m ./serve/ | tail -n 25

# Each binary parser's fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz: setup
	@for t in FuzzIDX FuzzCIFAR FuzzSVHNMat FuzzSVHNMatCompressed FuzzSTL10; do \
	  $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=2s ./data/ || exit 1; done
	$(GO) test -run='^$$' -fuzz='^FuzzUnmarshal$$' -fuzztime=$(FUZZTIME) ./onnxpb/
	$(GO) test -run='^$$' -fuzz='^FuzzFolderImage$$' -fuzztime=$(FUZZTIME) ./data/
	$(GO) test -run='^$$' -fuzz='^FuzzAnswerCache$$' -fuzztime=$(FUZZTIME) ./attack/
	$(GO) test -run='^$$' -fuzz='^FuzzLoad$$' -fuzztime=$(FUZZTIME) ./models/pth/
	$(GO) test -run='^$$' -fuzz='^FuzzRequests$$' -fuzztime=$(FUZZTIME) ./serve/

clean:
	rm -rf bin

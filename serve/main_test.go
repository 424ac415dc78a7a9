package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models"
)

// childEnv makes the test binary run a server (see runChild) instead of the tests: the
// kill -9 test starts it as a separate process.
const childEnv = "SERVE_TEST_CHILD"

var shared struct {
	root  string
	model string // a random ResNet-18 (ImageNet stem, 3x32x32 in, 512 out)

	once sync.Once
	enc  infer.Encoder
	err  error
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := runChild(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	root, err := os.MkdirTemp("", "serve-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared.root = root
	shared.model = filepath.Join(root, "resnet18.onnx")
	spec := models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "simclr", OutDim: 128, InputC: 3, InputHW: 32}
	if err := export.RandomModel(shared.model, spec, 7); err != nil {
		fmt.Fprintln(os.Stderr, "random model:", err)
		os.RemoveAll(root)
		os.Exit(1)
	}
	code := m.Run()
	stopPostgres()
	if shared.enc != nil {
		shared.enc.Close()
	}
	os.RemoveAll(root)
	os.Exit(code)
}

// runChild serves the model of $SERVE_TEST_MODEL with the store $SERVE_TEST_DB on a free
// loopback port, writes the address to $SERVE_TEST_ADDR_FILE and serves until SIGTERM.
func runChild() error {
	enc, err := infer.OpenORT(os.Getenv("SERVE_TEST_MODEL"), infer.Options{Threads: 1})
	if err != nil {
		return err
	}
	defer enc.Close()
	st, err := OpenStore(os.Getenv("SERVE_TEST_DB"))
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := New(enc, Config{Store: st, ModelName: "victim", MaxDelay: time.Millisecond, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	tmp := os.Getenv("SERVE_TEST_ADDR_FILE") + ".tmp"
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, os.Getenv("SERVE_TEST_ADDR_FILE")); err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	return srv.Serve(ctx, ln)
}

// sharedEncoder is one ONNX Runtime session over the test model, shared by the tests.
func sharedEncoder(tb testing.TB) infer.Encoder {
	tb.Helper()
	shared.once.Do(func() {
		shared.enc, shared.err = infer.OpenORT(shared.model, infer.Options{Threads: 2})
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.enc
}

// testServer is a Server on a loopback port with its own store.
type testServer struct {
	*Running
	store *Store
	stop  func() error // shuts the server down and returns Serve's result
}

func startServer(tb testing.TB, enc infer.Encoder, cfg Config) *testServer {
	tb.Helper()
	st, err := OpenStore(filepath.Join(tb.TempDir(), "server.db"))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Store = st
	if cfg.ModelName == "" {
		cfg.ModelName = "victim"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r, err := Start(enc, cfg, "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ts := &testServer{Running: r, store: st}
	var once sync.Once
	ts.stop = func() error {
		err := r.Stop()
		once.Do(func() { st.Close() })
		return err
	}
	tb.Cleanup(func() { ts.stop() })
	return ts
}

// addKey creates a key and returns its secret.
func (ts *testServer) addKey(tb testing.TB, name string, quota int64, rate float64) (Key, string) {
	tb.Helper()
	k, secret, err := ts.store.AddKey(context.Background(), name, quota, rate)
	if err != nil {
		tb.Fatal(err)
	}
	return k, secret
}

// randomImages returns n deterministic images in [0,1].
func randomImages(n int, seed uint64) infer.Images {
	r := rand.New(rand.NewPCG(seed, 1))
	x := infer.Images{N: n, C: 3, H: 32, W: 32, Data: make([]float32, n*3*32*32)}
	for i := range x.Data {
		x.Data[i] = r.Float32()
	}
	return x
}

func rawBody(x infer.Images) []byte {
	b := make([]byte, 4*len(x.Data))
	for i, f := range x.Data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// do sends a request and returns the status, headers and body.
func do(tb testing.TB, method, url string, header map[string]string, body []byte) (int, http.Header, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// postRaw posts a raw float32 tensor to /v1/embeddings and returns the JSON reply.
func postRaw(tb testing.TB, url, secret string, x infer.Images) (int, embeddingsReply, []byte) {
	tb.Helper()
	st, _, b := do(tb, "POST", url+"/v1/embeddings", map[string]string{
		"Authorization": "Bearer " + secret, "Content-Type": "application/octet-stream",
		"X-Shape": fmt.Sprintf("%d,%d,%d,%d", x.N, x.C, x.H, x.W),
	}, rawBody(x))
	var r embeddingsReply
	if st == http.StatusOK {
		if err := json.Unmarshal(b, &r); err != nil {
			tb.Fatalf("reply %s: %v", b, err)
		}
	}
	return st, r, b
}

// embeddingsReply is the JSON reply of /v1/embeddings.
type embeddingsReply struct {
	Model      string      `json:"model"`
	Dim        int         `json:"dim"`
	Embeddings [][]float32 `json:"embeddings"`
	Usage      struct {
		Queries   int    `json:"queries"`
		Used      int64  `json:"used"`
		Remaining *int64 `json:"remaining"`
	} `json:"usage"`
}

func (r embeddingsReply) flat() []float32 {
	var out []float32
	for _, e := range r.Embeddings {
		out = append(out, e...)
	}
	return out
}

// assertClose fails unless got and want agree within tol*max(1,|want|) element-wise.
func assertClose(tb testing.TB, what string, got, want []float32, tol float64) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if !(d <= tol*math.Max(1, math.Abs(float64(want[i])))) {
			tb.Fatalf("%s: element %d = %g, want %g", what, i, got[i], want[i])
		}
		worst = math.Max(worst, d)
	}
	tb.Logf("%s: %d values, max |diff| %.3g", what, len(want), worst)
}

// ledgerTotal is the sum of a key's daily ledger, checked against its used column.
func ledgerTotal(tb testing.TB, st *Store, keyID string) int64 {
	tb.Helper()
	days, err := st.Usage(context.Background(), keyID)
	if err != nil {
		tb.Fatal(err)
	}
	var sum int64
	for _, d := range days {
		sum += d.Images
	}
	k, err := st.Key(context.Background(), keyID)
	if err != nil {
		tb.Fatal(err)
	}
	if k.Used != sum {
		tb.Fatalf("key %s: used column %d != ledger sum %d", keyID, k.Used, sum)
	}
	return sum
}

var _ = time.Second

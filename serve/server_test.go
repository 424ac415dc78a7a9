package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssl-onnx/ssl-onnx/defense"
	"github.com/ssl-onnx/ssl-onnx/infer"
)

// pngOf encodes image i of x (values in [0,1], multiples of 1/255) as a base64 PNG.
func pngOf(tb testing.TB, x infer.Images, i int) string {
	tb.Helper()
	return pngString(x, i)
}

// pngString is pngOf for goroutines (encoding into memory cannot fail).
func pngString(x infer.Images, i int) string {
	img := image.NewNRGBA(image.Rect(0, 0, x.W, x.H))
	per, plane := x.C*x.H*x.W, x.H*x.W
	for y := 0; y < x.H; y++ {
		for xx := 0; xx < x.W; xx++ {
			p := func(c int) uint8 { return uint8(math.Round(float64(x.Data[i*per+c*plane+y*x.W+xx]) * 255)) }
			img.SetNRGBA(xx, y, color.NRGBA{p(0), p(1), p(2), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err) // a bytes.Buffer never fails a write
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// quantized returns images whose values are k/255, so a PNG holds them exactly.
func quantized(n int, seed uint64) infer.Images {
	x := randomImages(n, seed)
	for i, f := range x.Data {
		x.Data[i] = float32(math.Round(float64(f)*255)) / 255
	}
	return x
}

func TestEmbeddingsMatchLocalEncoder(t *testing.T) {
	enc := sharedEncoder(t)
	ts := startServer(t, enc, Config{})
	_, secret := ts.addKey(t, "alice", 1000, 0)
	x := quantized(3, 1)
	want, err := enc.Encode(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	auth := map[string]string{"Authorization": "Bearer " + secret}

	t.Run("json base64 png", func(t *testing.T) {
		body, _ := json.Marshal(map[string]any{"images": []string{pngOf(t, x, 0), pngOf(t, x, 1), pngOf(t, x, 2)}})
		st, h, b := do(t, "POST", ts.URL+"/v1/embeddings", auth, body)
		if st != http.StatusOK {
			t.Fatalf("status %d: %s", st, b)
		}
		var r embeddingsReply
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.Model != "victim" || r.Dim != 512 || len(r.Embeddings) != 3 || r.Usage.Queries != 3 || r.Usage.Remaining == nil || *r.Usage.Remaining != 1000-3 {
			t.Fatalf("reply header fields: model %q dim %d n %d usage %+v", r.Model, r.Dim, len(r.Embeddings), r.Usage)
		}
		if h.Get("X-Quota-Remaining") != "997" || h.Get("X-Quota-Used") != "3" {
			t.Fatalf("quota headers %v", h)
		}
		assertClose(t, "png vs local", r.flat(), want.Data, 1e-4)
	})
	t.Run("raw in, json out", func(t *testing.T) {
		st, r, b := postRaw(t, ts.URL, secret, x)
		if st != http.StatusOK {
			t.Fatalf("status %d: %s", st, b)
		}
		assertClose(t, "raw vs local", r.flat(), want.Data, 1e-4)
	})
	t.Run("raw in, raw out", func(t *testing.T) {
		st, h, b := do(t, "POST", ts.URL+"/v1/embeddings", map[string]string{
			"Authorization": "Bearer " + secret, "Content-Type": "application/octet-stream",
			"X-Shape": "3,3,32,32", "Accept": "application/octet-stream",
		}, rawBody(x))
		if st != http.StatusOK || h.Get("X-Shape") != "3,512" || h.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("status %d shape %q type %q: %.200s", st, h.Get("X-Shape"), h.Get("Content-Type"), b)
		}
		got, err := parseRawReply(h.Get("X-Shape"), b, 3)
		if err != nil {
			t.Fatal(err)
		}
		assertClose(t, "raw reply vs local", got.Data, want.Data, 1e-4)
	})
	t.Run("gray and large jpeg are converted and resized", func(t *testing.T) {
		gray := image.NewGray(image.Rect(0, 0, 32, 32))
		for i := range gray.Pix {
			gray.Pix[i] = uint8(i * 7)
		}
		var gb, jb bytes.Buffer
		png.Encode(&gb, gray)
		big := image.NewRGBA(image.Rect(0, 0, 96, 80))
		for i := range big.Pix {
			big.Pix[i] = uint8(i * 13)
		}
		jpeg.Encode(&jb, big, nil)
		body, _ := json.Marshal(map[string]any{"images": []string{
			base64.StdEncoding.EncodeToString(gb.Bytes()),
			"data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(jb.Bytes()),
		}})
		st, _, b := do(t, "POST", ts.URL+"/v1/embeddings", auth, body)
		if st != http.StatusOK {
			t.Fatalf("status %d: %s", st, b)
		}
		// The gray image must equal a 3-channel tensor repeating its plane.
		g := infer.Images{N: 1, C: 3, H: 32, W: 32, Data: make([]float32, 3*32*32)}
		for c := 0; c < 3; c++ {
			for i, p := range gray.Pix {
				g.Data[c*1024+i] = float32(p) / 255
			}
		}
		wantG, err := enc.Encode(context.Background(), g)
		if err != nil {
			t.Fatal(err)
		}
		var r embeddingsReply
		json.Unmarshal(b, &r)
		if len(r.Embeddings) != 2 {
			t.Fatalf("%d embeddings, want 2", len(r.Embeddings))
		}
		assertClose(t, "gray png vs gray3 local", r.Embeddings[0], wantG.Data, 1e-4)
	})
	if got := ledgerTotal(t, ts.store, mustAuth(t, ts.store, secret).ID); got != 3+3+3+2 {
		t.Fatalf("ledger %d images, want 11", got)
	}
}

func mustAuth(tb testing.TB, st *Store, secret string) Key {
	tb.Helper()
	k, err := st.Authenticate(context.Background(), secret)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestOpenInferenceProtocol(t *testing.T) {
	enc := sharedEncoder(t)
	ts := startServer(t, enc, Config{})
	_, secret := ts.addKey(t, "kserve", 0, 0)
	info := enc.Info()

	for _, path := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/victim/ready", "/v2/models/victim/versions/1/ready", "/healthz"} {
		if st, _, b := do(t, "GET", ts.URL+path, nil, nil); st != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, st, b)
		}
	}
	st, _, b := do(t, "GET", ts.URL+"/v2/models/victim", nil, nil)
	var md ModelMetadata
	if err := json.Unmarshal(b, &md); err != nil || st != http.StatusOK {
		t.Fatalf("metadata %d %s: %v", st, b, err)
	}
	wantIn := TensorMetadata{Name: info.InputName, Datatype: "FP32", Shape: []int64{-1, 3, 32, 32}}
	wantOut := TensorMetadata{Name: info.OutputName, Datatype: "FP32", Shape: []int64{-1, 512}}
	if md.Name != "victim" || md.Platform != "onnxruntime_onnx" || len(md.Inputs) != 1 || fmt.Sprint(md.Inputs[0]) != fmt.Sprint(wantIn) ||
		len(md.Outputs) != 1 || fmt.Sprint(md.Outputs[0]) != fmt.Sprint(wantOut) {
		t.Fatalf("metadata %+v", md)
	}

	x := randomImages(2, 5)
	want, err := enc.Encode(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	nested := make([][][][]float32, 2)
	for n := range nested {
		nested[n] = make([][][]float32, 3)
		for c := range nested[n] {
			nested[n][c] = make([][]float32, 32)
			for y := range nested[n][c] {
				off := n*3072 + c*1024 + y*32
				nested[n][c][y] = x.Data[off : off+32]
			}
		}
	}
	for _, tc := range []struct {
		name string
		data any
		path string
	}{
		{"flat", x.Data, "/v2/models/victim/infer"},
		{"nested", nested, "/v2/models/victim/versions/1/infer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"id": "req-7", "inputs": []map[string]any{{
				"name": info.InputName, "shape": []int{2, 3, 32, 32}, "datatype": "FP32", "data": tc.data,
			}}})
			st, _, b := do(t, "POST", ts.URL+tc.path, map[string]string{"Authorization": "Bearer " + secret}, body)
			if st != http.StatusOK {
				t.Fatalf("status %d: %s", st, b)
			}
			var r InferResponse
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if r.ModelName != "victim" || r.ID != "req-7" || len(r.Outputs) != 1 || r.Outputs[0].Name != info.OutputName ||
				fmt.Sprint(r.Outputs[0].Shape) != "[2 512]" || r.Outputs[0].Datatype != "FP32" {
				t.Fatalf("response %+v", r)
			}
			assertClose(t, "v2 "+tc.name, r.Outputs[0].Data, want.Data, 1e-4)
		})
	}
}

// TestBadInput sends every kind of bad request: each must get its 4xx status and a JSON
// error naming the problem, never a 5xx.
func TestBadInput(t *testing.T) {
	enc := sharedEncoder(t)
	ts := startServer(t, enc, Config{MaxBody: 1 << 20, MaxImages: 8})
	k, secret := ts.addKey(t, "mallory", 1000, 0)
	_, revoked := ts.addKey(t, "gone", 1000, 0)
	if _, err := ts.store.Revoke(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	info := enc.Info()
	good := randomImages(1, 3)
	nan := randomImages(1, 3)
	nan.Data[1500] = float32(math.NaN())
	inf := randomImages(1, 3)
	inf.Data[7] = float32(math.Inf(-1))
	auth := "Bearer " + secret
	rawH := func(shape string) map[string]string {
		return map[string]string{"Authorization": auth, "Content-Type": "application/octet-stream", "X-Shape": shape}
	}
	jsonH := map[string]string{"Authorization": auth, "Content-Type": "application/json"}
	v2 := func(shape []int, datatype, name string, data any) []byte {
		b, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": name, "shape": shape, "datatype": datatype, "data": data}}})
		return b
	}
	var textPNG bytes.Buffer
	textPNG.WriteString("this is not a png")
	tooMany := make([]string, 9)
	for i := range tooMany {
		tooMany[i] = pngOf(t, quantized(1, 1), 0)
	}
	tooManyBody, _ := json.Marshal(map[string]any{"images": tooMany})

	cases := []struct {
		name    string
		method  string
		path    string
		header  map[string]string
		body    []byte
		status  int
		mention string
	}{
		{"no key", "POST", "/v1/embeddings", map[string]string{"Content-Type": "application/json"}, []byte(`{"images":[]}`), 401, "missing API key"},
		{"basic auth", "POST", "/v1/embeddings", map[string]string{"Authorization": "Basic abc"}, nil, 401, `expected "Bearer <secret>"`},
		{"wrong key", "POST", "/v1/embeddings", map[string]string{"Authorization": "Bearer sslk_nope"}, nil, 401, "invalid API key"},
		{"revoked key", "POST", "/v1/embeddings", map[string]string{"Authorization": "Bearer " + revoked}, nil, 401, `"gone" was revoked`},
		{"v2 no key", "POST", "/v2/models/victim/infer", nil, v2([]int{1, 3, 32, 32}, "FP32", info.InputName, good.Data), 401, "missing API key"},
		{"bad json", "POST", "/v1/embeddings", jsonH, []byte(`{"images": [`), 400, "unexpected end of JSON"},
		{"unknown field", "POST", "/v1/embeddings", jsonH, []byte(`{"image": ["x"]}`), 400, `unknown field "image"`},
		{"wrong type", "POST", "/v1/embeddings", jsonH, []byte(`{"images": "abc"}`), 400, "expected []string"},
		{"no images", "POST", "/v1/embeddings", jsonH, []byte(`{"images": []}`), 400, `"images" is empty`},
		{"bad base64", "POST", "/v1/embeddings", jsonH, []byte(`{"images": ["%%%not base64"]}`), 400, "images[0]: invalid base64"},
		{"not an image", "POST", "/v1/embeddings", jsonH, []byte(`{"images": ["` + base64.StdEncoding.EncodeToString(textPNG.Bytes()) + `"]}`), 400, "images[0]: cannot decode image"},
		{"too many images", "POST", "/v1/embeddings", jsonH, tooManyBody, 413, "9 images in one request, the limit is 8"},
		{"other model", "POST", "/v1/embeddings", jsonH, []byte(`{"model":"gpt","images":["x"]}`), 404, `model "gpt" not found`},
		{"body too large", "POST", "/v1/embeddings", jsonH, make([]byte, 2<<20), 413, "exceeds the limit of 1048576 bytes"},
		{"raw over the image limit", "POST", "/v1/embeddings", rawH("100,3,32,32"), make([]byte, 100*3*32*32*4), 413, "100 images in one request, the limit is 8"},
		{"raw length mismatch", "POST", "/v1/embeddings", rawH("2,3,32,32"), make([]byte, 3*3*32*32*4), 400, "needs 6144 float32 values"},
		{"no shape", "POST", "/v1/embeddings", map[string]string{"Authorization": auth, "Content-Type": "application/octet-stream"}, rawBody(good), 400, "X-Shape: N,C,H,W"},
		{"bad shape header", "POST", "/v1/embeddings", rawH("1,3,x,32"), rawBody(good), 400, `dimension 2 ("x") is not an integer`},
		{"wrong chw", "POST", "/v1/embeddings", rawH("1,1,32,96"), rawBody(good), 400, "expected C,H,W = 3,32,32 (the model's input), found 1,32,96"},
		{"zero batch", "POST", "/v1/embeddings", rawH("0,3,32,32"), nil, 400, "expected at least 1"},
		{"3 dims", "POST", "/v1/embeddings", rawH("3,32,32"), rawBody(good), 400, "expected 4 dimensions"},
		{"short body", "POST", "/v1/embeddings", rawH("2,3,32,32"), rawBody(good), 400, "needs 6144 float32 values"},
		{"nan", "POST", "/v1/embeddings", rawH("1,3,32,32"), rawBody(nan), 400, "value 1500 (image 0, channel 1, row 14, column 28) is NaN"},
		{"inf", "POST", "/v1/embeddings", rawH("1,3,32,32"), rawBody(inf), 400, "is -Inf"},
		{"content type", "POST", "/v1/embeddings", map[string]string{"Authorization": auth, "Content-Type": "text/csv"}, []byte("1,2"), 415, `"text/csv"`},
		{"v2 datatype", "POST", "/v2/models/victim/infer", jsonH, v2([]int{1, 3, 32, 32}, "INT8", info.InputName, good.Data), 400, `datatype "INT8": expected FP32`},
		{"v2 input name", "POST", "/v2/models/victim/infer", jsonH, v2([]int{1, 3, 32, 32}, "FP32", "pixels", good.Data), 400, fmt.Sprintf(`input "pixels": the model's input is %q`, info.InputName)},
		{"v2 count", "POST", "/v2/models/victim/infer", jsonH, v2([]int{1, 3, 32, 32}, "FP32", info.InputName, good.Data[:100]), 400, "needs 3072 values, data has 100"},
		{"v2 too many values", "POST", "/v2/models/victim/infer", jsonH, v2([]int{1, 3, 32, 32}, "FP32", info.InputName, append(good.Data, 1)), 400, "more than the 3072 values"},
		{"v2 strings", "POST", "/v2/models/victim/infer", jsonH, v2([]int{1, 3, 32, 32}, "FP32", info.InputName, []string{"a"}), 400, "expected a number"},
		{"v2 overflow", "POST", "/v2/models/victim/infer", jsonH, []byte(`{"inputs":[{"name":"` + info.InputName + `","shape":[1,3,32,32],"datatype":"FP32","data":[1e39]}]}`), 400, "not a finite float32"},
		{"v2 shape", "POST", "/v2/models/victim/infer", jsonH, v2([]int{1, 3, 64, 64}, "FP32", info.InputName, good.Data), 400, "found 3,64,64"},
		{"v2 no inputs", "POST", "/v2/models/victim/infer", jsonH, []byte(`{"inputs":[]}`), 400, "0 input tensors"},
		{"v2 unknown model", "POST", "/v2/models/resnet/infer", jsonH, v2([]int{1, 3, 32, 32}, "FP32", info.InputName, good.Data), 404, `model "resnet" not found`},
		{"v2 unknown model metadata", "GET", "/v2/models/resnet", nil, nil, 404, `model "resnet" not found`},
		{"v2 unknown version", "GET", "/v2/models/victim/versions/3", nil, nil, 404, `version "3" not found`},
		{"wrong method", "GET", "/v1/embeddings", nil, nil, 405, "expected POST"},
		{"unknown path", "GET", "/v3/anything", nil, nil, 404, "no such endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, h, b := do(t, tc.method, ts.URL+tc.path, tc.header, tc.body)
			var e struct {
				Error string `json:"error"`
				Code  string `json:"code"`
			}
			if err := json.Unmarshal(b, &e); err != nil || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Fatalf("status %d, body is not a JSON error (%v): %s", st, err, b)
			}
			if st != tc.status || !strings.Contains(e.Error, tc.mention) || e.Code == "" {
				t.Fatalf("got %d %q (code %q), want %d mentioning %q", st, e.Error, e.Code, tc.status, tc.mention)
			}
		})
	}
	if got := ledgerTotal(t, ts.store, k.ID); got != 0 {
		t.Fatalf("bad requests were counted: ledger %d, want 0", got)
	}
	if st, _, b := postRaw(t, ts.URL, secret, good); st != http.StatusOK {
		t.Fatalf("a good request after the bad ones: %d %s", st, b)
	}
}

func TestQuotaAndRateLimit(t *testing.T) {
	enc := sharedEncoder(t)
	ts := startServer(t, enc, Config{MaxInflight: 64}) // 32 concurrent clients share one key here

	t.Run("quota", func(t *testing.T) {
		k, secret := ts.addKey(t, "small", 5, 0)
		for i, tc := range []struct{ n, status, remaining int }{{2, 200, 3}, {2, 200, 1}, {2, 402, 1}, {1, 200, 0}, {1, 402, 0}} {
			st, r, b := postRaw(t, ts.URL, secret, randomImages(tc.n, uint64(i)))
			if st != tc.status {
				t.Fatalf("request %d (%d images): status %d, want %d: %s", i, tc.n, st, tc.status, b)
			}
			if st == 402 && !strings.Contains(string(b), fmt.Sprintf("quota exhausted for key \\\"small\\\": %d of 5 images used", 5-tc.remaining)) {
				t.Fatalf("quota error %s", b)
			}
			if st == 200 && (r.Usage.Remaining == nil || *r.Usage.Remaining != int64(tc.remaining)) {
				t.Fatalf("request %d: remaining %v, want %d", i, r.Usage.Remaining, tc.remaining)
			}
		}
		if got := ledgerTotal(t, ts.store, k.ID); got != 5 {
			t.Fatalf("ledger %d, want 5", got)
		}
	})
	t.Run("quota under 32 concurrent clients", func(t *testing.T) {
		// 32 clients race for a quota of 100 with requests of 1-3 images until refused: the
		// images answered, the ledger and the quota agree exactly, and nothing fails with 5xx.
		const quota = 100
		k, secret := ts.addKey(t, "crowd", quota, 0)
		var answered, refused, other atomic.Int64
		var wg sync.WaitGroup
		for c := 0; c < 32; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := 0; ; i++ {
					n := 1 + (c+i)%3
					st, r, _ := postRaw(t, ts.URL, secret, randomImages(n, uint64(c*1000+i)))
					switch {
					case st == 200 && len(r.Embeddings) == n:
						answered.Add(int64(n))
					case st == http.StatusPaymentRequired:
						refused.Add(1)
						if n == 1 {
							return // nothing left for anyone
						}
					default:
						other.Add(1)
						return
					}
				}
			}(c)
		}
		wg.Wait()
		if other.Load() != 0 {
			t.Fatalf("%d requests answered neither 200 nor 402", other.Load())
		}
		if got, led := answered.Load(), ledgerTotal(t, ts.store, k.ID); got != quota || led != quota {
			t.Fatalf("answered %d images, ledger %d, quota %d", got, led, quota)
		}
		t.Logf("32 clients: %d images answered, %d requests refused with 402", answered.Load(), refused.Load())
	})
	t.Run("rate", func(t *testing.T) {
		k, secret := ts.addKey(t, "slow", 0, 4)
		st, _, b := postRaw(t, ts.URL, secret, randomImages(4, 1))
		if st != 200 {
			t.Fatalf("first 4 images: %d %s", st, b)
		}
		// Over the rate, images are not even decoded: 429, not 400, for a bad image.
		if st, _, b := do(t, "POST", ts.URL+"/v1/embeddings", map[string]string{"Authorization": "Bearer " + secret},
			[]byte(`{"images":["not base64!"]}`)); st != http.StatusTooManyRequests {
			t.Fatalf("bad image over the rate: %d %s", st, b)
		}
		hdr := map[string]string{"Authorization": "Bearer " + secret, "Content-Type": "application/octet-stream", "X-Shape": "2,3,32,32"}
		st, h, b := do(t, "POST", ts.URL+"/v1/embeddings", hdr, rawBody(randomImages(2, 2)))
		if st != http.StatusTooManyRequests || h.Get("Retry-After") != "1" || h.Get("X-RateLimit-Limit") != "4" ||
			h.Get("X-RateLimit-Remaining") != "0" || h.Get("X-RateLimit-Reset") != "1" || !strings.Contains(string(b), "4 images/s") {
			t.Fatalf("over the rate: %d %v %s", st, h, b)
		}
		var e struct {
			RetryAfter float64 `json:"retry_after_seconds"`
		}
		json.Unmarshal(b, &e)
		if e.RetryAfter <= 0 || e.RetryAfter > 0.5 {
			t.Fatalf("retry_after_seconds %g, want (0, 0.5] for 2 tokens at 4/s", e.RetryAfter)
		}
		time.Sleep(time.Duration(e.RetryAfter*float64(time.Second)) + 20*time.Millisecond)
		if st, h, b = do(t, "POST", ts.URL+"/v1/embeddings", hdr, rawBody(randomImages(2, 2))); st != 200 || h.Get("X-RateLimit-Limit") != "4" {
			t.Fatalf("after waiting: %d %s", st, b)
		}
		if got := ledgerTotal(t, ts.store, k.ID); got != 6 {
			t.Fatalf("ledger %d, want 6 (refused requests are not counted)", got)
		}
	})
	t.Run("revoked while serving", func(t *testing.T) {
		_, secret := ts.addKey(t, "fired", 0, 0)
		if st, _, b := postRaw(t, ts.URL, secret, randomImages(1, 1)); st != 200 {
			t.Fatalf("%d %s", st, b)
		}
		other, err := OpenStore(ts.store.Path()) // a second connection, as `ssl-onnx keys revoke` would be
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if _, err := other.Revoke(context.Background(), "fired"); err != nil {
			t.Fatal(err)
		}
		if st, _, b := postRaw(t, ts.URL, secret, randomImages(1, 1)); st != http.StatusUnauthorized {
			t.Fatalf("after revoke: %d %s", st, b)
		}
	})
}

// countingEncoder wraps a real encoder and records every Encode call's key and size.
type countingEncoder struct {
	infer.Encoder
	mu    sync.Mutex
	calls []call
}

type call struct {
	key    string
	images int
}

func (c *countingEncoder) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	c.mu.Lock()
	c.calls = append(c.calls, call{defense.KeyFrom(ctx), x.N})
	c.mu.Unlock()
	return c.Encoder.Encode(ctx, x)
}

func TestDynamicBatching(t *testing.T) {
	enc := sharedEncoder(t)
	ce := &countingEncoder{Encoder: enc}
	ts := startServer(t, ce, Config{MaxBatch: 64, MaxDelay: 30 * time.Millisecond})
	ka, secretA := ts.addKey(t, "a", 0, 0)
	kb, secretB := ts.addKey(t, "b", 0, 0)
	const n = 32
	x := randomImages(n, 9)
	want := make([]infer.Vectors, n) // unbatched answers
	for i := range want {
		var err error
		if want[i], err = enc.Encode(context.Background(), infer.Images{N: 1, C: 3, H: 32, W: 32, Data: x.Data[i*3072 : (i+1)*3072]}); err != nil {
			t.Fatal(err)
		}
	}
	got := make([][]float32, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secret := secretA
			if i%2 == 1 {
				secret = secretB
			}
			st, r, b := postRaw(t, ts.URL, secret, infer.Images{N: 1, C: 3, H: 32, W: 32, Data: x.Data[i*3072 : (i+1)*3072]})
			if st != 200 {
				errs[i] = fmt.Errorf("request %d: %d %s", i, st, b)
				return
			}
			got[i] = r.flat()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var gotAll, wantAll []float32
	for i := range got {
		if len(got[i]) != 512 {
			t.Fatalf("request %d: %d values, want 512", i, len(got[i]))
		}
		gotAll, wantAll = append(gotAll, got[i]...), append(wantAll, want[i].Data...)
	}
	assertClose(t, "32 batched requests vs each encoded alone", gotAll, wantAll, 1e-5)
	perKey := map[string]int{}
	for _, c := range ce.calls {
		perKey[c.key] += c.images
	}
	t.Logf("%d requests -> %d Encode calls: %v", n, len(ce.calls), ce.calls)
	if len(ce.calls) >= n {
		t.Fatalf("%d Encode calls for %d concurrent requests: no batching", len(ce.calls), n)
	}
	// Batches never mix keys: each call ran under one key, and the images per key add up.
	if perKey[ka.ID] != n/2 || perKey[kb.ID] != n/2 || len(perKey) != 2 {
		t.Fatalf("images per key %v, want %d each for %s and %s", perKey, n/2, ka.ID, kb.ID)
	}
	if ledgerTotal(t, ts.store, ka.ID) != n/2 || ledgerTotal(t, ts.store, kb.ID) != n/2 {
		t.Fatal("ledger does not hold 16 images per key")
	}
	st, _, b := do(t, "GET", ts.URL+"/metrics", nil, nil)
	for _, want := range []string{
		`ssl_onnx_requests_total{code="200",endpoint="embeddings"} 32`,
		`ssl_onnx_images_answered_total 32`,
		`ssl_onnx_batch_size_images_count ` + strconv.Itoa(len(ce.calls)),
		`ssl_onnx_queue_depth 0`,
		`ssl_onnx_request_duration_seconds_bucket{endpoint="embeddings"`,
	} {
		if st != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("metrics (status %d) lack %q:\n%s", st, want, b)
		}
	}
}

// slowEncoder delays every Encode call, so a request is surely in flight.
type slowEncoder struct {
	infer.Encoder
	started chan struct{}
	delay   time.Duration
}

func (s *slowEncoder) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	select {
	case s.started <- struct{}{}:
	default:
	}
	time.Sleep(s.delay)
	return s.Encoder.Encode(ctx, x)
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	se := &slowEncoder{Encoder: sharedEncoder(t), started: make(chan struct{}, 1), delay: 300 * time.Millisecond}
	ts := startServer(t, se, Config{})
	k, secret := ts.addKey(t, "late", 0, 0)
	type result struct {
		st int
		b  []byte
	}
	res := make(chan result, 1)
	go func() {
		st, _, b := postRaw(t, ts.URL, secret, randomImages(2, 1))
		res <- result{st, b}
	}()
	<-se.started
	if err := ts.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	r := <-res
	if r.st != 200 {
		t.Fatalf("in-flight request during shutdown: %d %s", r.st, r.b)
	}
	st, err := OpenStore(ts.store.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := ledgerTotal(t, st, k.ID); got != 2 {
		t.Fatalf("ledger %d, want 2", got)
	}
	if _, err := http.Get(ts.URL + "/healthz"); err == nil {
		t.Fatal("server still listening after shutdown")
	}
}

func TestRawReplyRoundTrip(t *testing.T) {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b, math.Float32bits(1.5))
	binary.LittleEndian.PutUint32(b[4:], math.Float32bits(-2))
	for _, tc := range []struct {
		shape string
		body  []byte
		ok    bool
	}{{"1,2", b, true}, {"2,1", b, false}, {"1,3", b, false}, {"x", b, false}, {"1,2", b[:7], false}} {
		v, err := parseRawReply(tc.shape, tc.body, 1)
		if (err == nil) != tc.ok || (tc.ok && (v.Data[0] != 1.5 || v.Data[1] != -2)) {
			t.Errorf("shape %q len %d: %v %v", tc.shape, len(tc.body), v, err)
		}
	}
}

func TestDefensesFromConfig(t *testing.T) {
	enc := sharedEncoder(t)
	st, err := OpenStore(t.TempDir() + "/d.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := New(enc, Config{Store: st, Defenses: []string{"nosuch:1"}}); err == nil || !strings.Contains(err.Error(), "noise") {
		t.Fatalf("unknown defense: %v, want an error listing the known ones", err)
	}
	// The served encoder is the model inside its defenses, seeded from the config: the answer
	// equals the same defense composed here with that seed, for that key, and not another seed's.
	ts := startServer(t, enc, Config{Defenses: []string{"noise:sigma=0.5"}, DefenseSeed: 5})
	if _, ok := defense.Find[*defense.Noise](ts.Encoder()); !ok {
		t.Fatalf("served encoder %T has no noise layer", ts.Encoder())
	}
	k, secret := ts.addKey(t, "eve", 0, 0)
	x := randomImages(1, 1)
	code, r, body := postRaw(t, ts.URL, secret, x)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	local := func(seed int64) []float32 {
		d, err := defense.Compose(enc, []string{"noise:sigma=0.5"}, seed)
		if err != nil {
			t.Fatal(err)
		}
		v, err := d.Encode(defense.WithKey(context.Background(), k.ID), x)
		if err != nil {
			t.Fatal(err)
		}
		return v.Data
	}
	assertClose(t, "served vs composed with the config's seed", r.flat(), local(5), 1e-5)
	if fmt.Sprint(r.flat()) == fmt.Sprint(local(6)) {
		t.Fatal("another defense seed gave the same noisy answer")
	}
}

// A key blocked by PRADA gets 403 without the detector's internals, is logged once at Warn,
// counted in /metrics, and its blocked requests keep their rate tokens (no free compute).
func TestBlockedKeyIsForbidden(t *testing.T) {
	var logBuf syncBuffer
	ts := startServer(t, sharedEncoder(t), Config{Defenses: []string{"prada:min=5"},
		Logger: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	_, secret := ts.addKey(t, "eve", 0, 1000)
	// A synthetic stream: one image and tiny perturbations of it (PRADA's target).
	base := randomImages(1, 3)
	var codes []int
	var last []byte
	for i := 0; i < 12; i++ {
		x := infer.Images{N: 4, C: 3, H: 32, W: 32, Data: make([]float32, 4*3072)}
		for j := range x.Data {
			x.Data[j] = base.Data[j%3072] + float32((j*7+i*13)%5)*1e-3*float32(i%3+1)
		}
		st, _, b := postRaw(t, ts.URL, secret, x)
		codes = append(codes, st)
		last = b
	}
	if codes[len(codes)-1] != http.StatusForbidden {
		t.Fatalf("status codes %v: the stream was never blocked with 403", codes)
	}
	for _, leak := range []string{"Shapiro", "delta", "W=", "prada", "distances"} {
		if strings.Contains(string(last), leak) {
			t.Fatalf("blocked reply %s reveals the detector (%q)", last, leak)
		}
	}
	if !strings.Contains(string(last), `"code":"blocked"`) {
		t.Fatalf("blocked reply %s: want code blocked", last)
	}
	blocked := 0
	for _, c := range codes {
		if c == http.StatusForbidden {
			blocked++
		} else if c != 200 {
			t.Fatalf("status codes %v: only 200 and 403 expected", codes)
		}
	}
	if n := strings.Count(logBuf.String(), "key blocked"); n != 1 {
		t.Fatalf("%d block log lines for %d blocked requests, want 1:\n%s", n, blocked, logBuf.String())
	}
	if strings.Contains(logBuf.String(), "level=ERROR") {
		t.Fatalf("a block was logged as an error:\n%s", logBuf.String())
	}
	_, _, m := do(t, "GET", ts.URL+"/metrics", nil, nil)
	if !strings.Contains(string(m), fmt.Sprintf("ssl_onnx_blocked_requests_total %d", blocked)) {
		t.Fatalf("metrics do not count %d blocked requests", blocked)
	}
}

// Finite but huge inputs make the model's output non-finite: that is the caller's input
// (422 naming it), and the compute it cost stays rate-limited.
func TestNonFiniteOutputIsCallersAndRateLimited(t *testing.T) {
	ts := startServer(t, sharedEncoder(t), Config{})
	_, secret := ts.addKey(t, "eve", 0, 1)
	x := randomImages(1, 4)
	for i := range x.Data {
		x.Data[i] = 3e38
	}
	var codes []int
	for i := 0; i < 3; i++ {
		st, _, b := postRaw(t, ts.URL, secret, x)
		codes = append(codes, st)
		if i == 0 && (st != http.StatusUnprocessableEntity || !strings.Contains(string(b), "non-finite")) {
			t.Fatalf("first huge request: %d %s, want 422 naming non-finite output", st, b)
		}
	}
	if codes[1] != http.StatusTooManyRequests && codes[2] != http.StatusTooManyRequests {
		t.Fatalf("a key limited to 1 image/s sent 3 huge requests at once and got %v: no 429, free compute", codes)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Two servers on one database (an overlapping deploy, or replicas) race for one key's quota:
// each admits from its own memory, but the database bills in a guarded update, so together
// they never answer or bill more than the quota. Before the guard: 24 of 8 images answered
// and 192 billed against a quota of 100.
func TestQuotaHeldAcrossServersOnOneDatabase(t *testing.T) {
	eachBackend(t, func(t *testing.T, db string) {
		enc := sharedEncoder(t)
		path := db
		var urls []string
		var stores []*Store
		for i := 0; i < 2; i++ {
			st, err := OpenStore(path)
			if err != nil {
				t.Fatal(err)
			}
			stores = append(stores, st)
			r, err := Start(enc, Config{Store: st, ModelName: "victim", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Stop(); st.Close() })
			urls = append(urls, r.URL)
		}
		const quota = 100
		k, secret, err := stores[0].AddKey(context.Background(), "eve", quota, 0)
		if err != nil {
			t.Fatal(err)
		}
		x := randomImages(8, 5)
		var wg sync.WaitGroup
		var answered, refused atomic.Int64
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				st, _, _ := postRaw(t, urls[i%2], secret, x)
				switch st {
				case http.StatusOK:
					answered.Add(int64(x.N))
				case http.StatusPaymentRequired:
					refused.Add(1)
				default:
					t.Errorf("status %d: want 200 or 402", st)
				}
			}(i)
		}
		wg.Wait()
		billed := ledgerTotal(t, stores[1], k.ID)
		if answered.Load() > quota || billed != answered.Load() {
			t.Fatalf("quota %d: %d images answered, %d billed (%d requests refused)", quota, answered.Load(), billed, refused.Load())
		}
		t.Logf("quota %d: %d images answered and billed, %d requests refused", quota, answered.Load(), refused.Load())
	})
}

// A rate in the database slower than AddKey allows (an older database): Retry-After stays a
// day at most instead of overflowing into a small number.
func TestRetryAfterCapped(t *testing.T) {
	ts := startServer(t, sharedEncoder(t), Config{})
	k, secret := ts.addKey(t, "slow", 0, 1)
	if _, err := ts.store.db.Exec(`UPDATE api_keys SET rate = 1e-12 WHERE id = ?`, k.ID); err != nil {
		t.Fatal(err)
	}
	x := randomImages(1, 6)
	var retry string
	for i := 0; i < 2 && retry == ""; i++ {
		st, h, b := do(t, "POST", ts.URL+"/v1/embeddings", map[string]string{
			"Authorization": "Bearer " + secret, "Content-Type": "application/octet-stream", "X-Shape": "1,3,32,32"}, rawBody(x))
		if st == http.StatusTooManyRequests {
			retry = h.Get("Retry-After")
		} else if st != 200 {
			t.Fatalf("%d %s", st, b)
		}
	}
	if retry != "86400" {
		t.Fatalf("Retry-After %q for a wait of 1e12 s: want the cap, 86400", retry)
	}
}

// The key is admitted for the image count its shape header announces before the body is
// read: a key over its quota (or rate) sends a 32 MiB body and the server answers 402 without
// reading it. One key cannot hold more requests in flight than MaxInflight.
func TestAdmissionBeforeBodyAndInflightCap(t *testing.T) {
	gate := make(chan struct{})
	slow := &gatedEncoder{Encoder: sharedEncoder(t), gate: gate}
	ts := startServer(t, slow, Config{MaxInflight: 2, MaxBatch: 1})
	_, spent := ts.addKey(t, "spent", 1, 0)
	if st, _, b := postRaw(t, ts.URL, spent, randomImages(1, 1)); st != 200 {
		close(gate)
		t.Fatalf("%d %s", st, b)
	}
	// The body reader counts what the server read: nothing, for a key without quota.
	counted := &countingReader{r: bytes.NewReader(rawBody(randomImages(8, 2)))}
	req, _ := http.NewRequest("POST", ts.URL+"/v1/embeddings", counted)
	req.ContentLength = 8 * 3 * 32 * 32 * 4
	req.Header.Set("Authorization", "Bearer "+spent)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Shape", "8,3,32,32")
	// "Expect: 100-continue": the client sends the body only once the server starts reading it.
	req.Header.Set("Expect", "100-continue")
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}
	resp, err := client.Do(req)
	if err != nil {
		close(gate)
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPaymentRequired || counted.n.Load() != 0 {
		close(gate)
		t.Fatalf("over-quota raw request: %d after the server read %d bytes: want 402 before the body", resp.StatusCode, counted.n.Load())
	}
	// Two requests of one key wait on the model; a third is refused at once.
	_, secret := ts.addKey(t, "busy", 0, 0)
	codes := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() { st, _, _ := postRaw(t, ts.URL, secret, randomImages(1, 3)); codes <- st }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for slow.waiting.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the second request is admitted and queued
	st, _, b := postRaw(t, ts.URL, secret, randomImages(1, 4))
	close(gate)
	if st != http.StatusTooManyRequests || !strings.Contains(string(b), "too_many_in_flight") {
		t.Fatalf("third request in flight: %d %s, want 429 too_many_in_flight", st, b)
	}
	for i := 0; i < 2; i++ {
		if c := <-codes; c != 200 {
			t.Fatalf("a request within the cap got %d", c)
		}
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// gatedEncoder holds every Encode call after the first until gate is closed.
type gatedEncoder struct {
	infer.Encoder
	gate    chan struct{}
	calls   atomic.Int64
	waiting atomic.Int64
}

func (g *gatedEncoder) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	if g.calls.Add(1) > 1 { // the first call (the spent key's one image) is not held
		g.waiting.Add(1)
		<-g.gate
	}
	return g.Encoder.Encode(ctx, x)
}

// The batch queue is bounded: while the model is busy, requests beyond MaxQueue waiting get
// 503 with Retry-After instead of piling up in memory.
func TestQueueBounded(t *testing.T) {
	gate := make(chan struct{})
	g := &gatedEncoder{Encoder: sharedEncoder(t), gate: gate}
	g.calls.Store(1) // hold every call
	ts := startServer(t, g, Config{MaxQueue: 2, MaxBatch: 1})
	codes := make(chan int, 8)
	var secrets []string
	for i := 0; i < 5; i++ {
		_, s := ts.addKey(t, fmt.Sprintf("k%d", i), 0, 0)
		secrets = append(secrets, s)
	}
	// One request runs (held), two wait in the queue; the others are refused.
	for i := 0; i < 3; i++ {
		go func(i int) { st, _, _ := postRaw(t, ts.URL, secrets[i], randomImages(1, uint64(i))); codes <- st }(i)
		time.Sleep(150 * time.Millisecond)
	}
	st, h, b := do(t, "POST", ts.URL+"/v1/embeddings", map[string]string{"Authorization": "Bearer " + secrets[4],
		"Content-Type": "application/octet-stream", "X-Shape": "1,3,32,32"}, rawBody(randomImages(1, 9)))
	close(gate)
	if st != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(string(b), "overloaded") {
		t.Fatalf("request beyond the queue: %d (Retry-After %q) %s, want 503 overloaded", st, h.Get("Retry-After"), b)
	}
	for i := 0; i < 3; i++ {
		if c := <-codes; c != 200 {
			t.Fatalf("a queued request got %d", c)
		}
	}
}

// TestRequestPixelBudget: small compressed files that expand to many pixels each are refused
// with 413 once a request's decoded pixels pass MaxRequestPixels, before the model runs and
// without billing; a request within the budget is answered.
func TestRequestPixelBudget(t *testing.T) {
	enc := sharedEncoder(t)
	ts := startServer(t, enc, Config{MaxRequestPixels: 3 * 256 * 256})
	k, secret := ts.addKey(t, "pixels", 1000, 0)
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 256, 256))); err != nil {
		t.Fatal(err)
	}
	big := base64.StdEncoding.EncodeToString(buf.Bytes()) // a few hundred bytes, 65536 pixels
	h := map[string]string{"Authorization": "Bearer " + secret, "Content-Type": "application/json"}
	body := func(n int) []byte {
		items := make([]string, n)
		for i := range items {
			items[i] = big
		}
		b, _ := json.Marshal(map[string]any{"images": items})
		return b
	}
	st, _, b := do(t, "POST", ts.URL+"/v1/embeddings", h, body(4))
	if st != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "images[3]") || !strings.Contains(string(b), "too_many_pixels") {
		t.Fatalf("4 images of 256x256 over a 3-image pixel budget: %d %s, want 413 too_many_pixels naming images[3]", st, b)
	}
	if got := ledgerTotal(t, ts.store, k.ID); got != 0 {
		t.Fatalf("a refused request was billed: ledger %d", got)
	}
	if st, _, b := do(t, "POST", ts.URL+"/v1/embeddings", h, body(3)); st != http.StatusOK {
		t.Fatalf("3 images within the budget: %d %s", st, b)
	}
}

// Replicas on one database: a revocation made by another process (keys revoke) takes effect
// at the next request on every replica, and one Idempotency-Key sent to both replicas at once
// is billed once.
func TestReplicasRevokeAndIdempotency(t *testing.T) {
	eachBackend(t, func(t *testing.T, db string) {
		ctx := context.Background()
		var urls []string
		for i := 0; i < 2; i++ {
			st, err := OpenStore(db)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Start(sharedEncoder(t), Config{Store: st, ModelName: "victim", Logger: discardLogger()}, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Stop(); st.Close() })
			urls = append(urls, r.URL)
		}
		admin, err := OpenStore(db) // the keys command, a third process
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		k, secret, err := admin.AddKey(ctx, "replicated", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var ok atomic.Int64
		for _, u := range urls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if st, _, b := postIdem(t, u, secret, "same-request", 1); st == http.StatusOK {
					ok.Add(1)
				} else {
					t.Errorf("idempotent request on %s: %d %s", u, st, b)
				}
			}()
		}
		wg.Wait()
		if got := ledgerTotal(t, admin, k.ID); ok.Load() != 2 || got != 4 {
			t.Fatalf("one Idempotency-Key on two replicas: %d answered, %d images billed, want 2 answered and 4 billed once", ok.Load(), got)
		}
		if _, err := admin.Revoke(ctx, "replicated"); err != nil {
			t.Fatal(err)
		}
		for _, u := range urls {
			if st, _, b := postRaw(t, u, secret, randomImages(1, 2)); st != http.StatusUnauthorized || !strings.Contains(string(b), "revoked") {
				t.Fatalf("replica %s after the revocation: %d %s, want 401 revoked", u, st, b)
			}
		}
	})
}

package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

func TestClientMatchesLocalEncoder(t *testing.T) {
	enc := sharedEncoder(t)
	ts := startServer(t, enc, Config{MaxImages: 16})
	_, secret := ts.addKey(t, "attacker", 100, 0)
	x := randomImages(40, 11)
	want, err := enc.Encode(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{ts.URL, ts.URL + "/", ts.URL + "/v2/models/victim"} {
		c, err := Dial(u, secret)
		if err != nil {
			t.Fatalf("Dial %s: %v", u, err)
		}
		info, local := c.Info(), enc.Info()
		if c.Model() != "victim" || info.InputName != local.InputName || info.OutputName != local.OutputName ||
			fmt.Sprint(info.InputShape) != "[-1 3 32 32]" || info.OutputDim != 512 || c.BatchLimit != 16 ||
			info.Metadata["normalization"] != "none" {
			t.Fatalf("Dial %s: info %+v model %q batch limit %d", u, info, c.Model(), c.BatchLimit)
		}
		c.Close()
	}
	c, err := Dial(ts.URL, secret)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var e infer.Encoder = c
	got, err := e.Encode(context.Background(), x) // 40 images: requests of 16, 16, 8
	if err != nil {
		t.Fatal(err)
	}
	if got.N != 40 || got.D != 512 {
		t.Fatalf("%d x %d vectors", got.N, got.D)
	}
	assertClose(t, "remote vs local", got.Data, want.Data, 1e-4)
	if u := c.Usage(); u.Used != 40 || u.Limit != 100 || u.Remaining != 60 {
		t.Fatalf("usage %+v", u)
	}

	t.Run("open inference protocol v2", func(t *testing.T) {
		_, secret := ts.addKey(t, "v2-attacker", 100, 0)
		c, err := Dial(ts.URL+"/v2/models/victim", secret)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got, err := c.Encode(context.Background(), x) // JSON tensors, 16+16+8
		if err != nil {
			t.Fatal(err)
		}
		if got.N != 40 || got.D != 512 {
			t.Fatalf("%d x %d vectors", got.N, got.D)
		}
		assertClose(t, "remote v2 vs local", got.Data, want.Data, 1e-4)
		if u := c.Usage(); u.Used != 40 || u.Remaining != 60 {
			t.Fatalf("usage %+v", u)
		}
	})
	t.Run("errors", func(t *testing.T) {
		if _, err := c.Encode(context.Background(), infer.Images{N: 1, C: 1, H: 32, W: 32, Data: make([]float32, 1024)}); err == nil ||
			!strings.Contains(err.Error(), "takes C,H,W = 3,32,32, got 1,32,32") {
			t.Fatalf("wrong shape: %v", err)
		}
		_, err := c.Encode(context.Background(), randomImages(61, 1)) // 16+16+16 answered, then 13 > 12 left
		var re *RemoteError
		if !errors.As(err, &re) || re.Status != http.StatusPaymentRequired || re.Code != "quota_exhausted" || !strings.Contains(err.Error(), "88 of 100 images used") {
			t.Fatalf("over quota: %v", err)
		}
		bad, err := Dial(ts.URL, "sslk_wrong")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bad.Encode(context.Background(), randomImages(1, 1)); !errors.As(err, &re) || re.Status != 401 {
			t.Fatalf("bad key: %v", err)
		}
		for _, u := range []string{"ftp://x", "127.0.0.1:8700", ts.URL + "/v2/models/nothere"} {
			if _, err := Dial(u, secret); err == nil {
				t.Fatalf("Dial %q succeeded", u)
			}
		}
	})
	t.Run("keeps paid answers when a later request fails", func(t *testing.T) {
		k, secret := ts.addKey(t, "partial", 12, 0)
		c, err := Dial(ts.URL, secret)
		if err != nil {
			t.Fatal(err)
		}
		c.BatchLimit = 8
		x := randomImages(16, 4) // 8 answered and billed, then 8 over the quota of 12
		got, err := c.Encode(context.Background(), x)
		var pe *infer.PartialError
		if !errors.As(err, &pe) || pe.Answered != 8 || got.N != 8 || len(got.Data) != 8*got.D {
			t.Fatalf("Encode: %d rows, %v: want the 8 paid answers and a PartialError", got.N, err)
		}
		want, _ := enc.Encode(context.Background(), infer.Images{N: 8, C: 3, H: 32, W: 32, Data: x.Data[:8*3072]})
		assertClose(t, "paid answers", got.Data, want.Data, 1e-4)
		if billed := ledgerTotal(t, ts.store, k.ID); billed != 8 {
			t.Fatalf("billed %d, want the 8 answered", billed)
		}
	})
	t.Run("retries 429", func(t *testing.T) {
		_, secret := ts.addKey(t, "throttled", 0, 10)
		c, err := Dial(ts.URL, secret)
		if err != nil {
			t.Fatal(err)
		}
		c.BatchLimit = 8
		start := time.Now()
		x := randomImages(24, 3) // 8 + 8 + 8 at 10 images/s from a bucket of 10
		got, err := c.Encode(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := enc.Encode(context.Background(), x)
		assertClose(t, "throttled remote vs local", got.Data, want.Data, 1e-4)
		if c.Usage().Retries < 1 || time.Since(start) < 1000*time.Millisecond {
			t.Fatalf("%d retries in %v: the rate limit was not hit", c.Usage().Retries, time.Since(start))
		}
		t.Logf("%d retries, %v", c.Usage().Retries, time.Since(start))
		c.MaxRetries = 0
		if _, err := c.Encode(context.Background(), randomImages(8, 1)); err == nil || !strings.Contains(err.Error(), "gave up after 0 retries") {
			t.Fatalf("no retries allowed: %v", err)
		}
	})
}

// A hostile (or broken) server cannot make the client allocate more than an answer needs:
// an announced Content-Length of almost 1 GiB, or an endless chunked body, is an error.
func TestClientBoundsReplies(t *testing.T) {
	ts := startServer(t, sharedEncoder(t), Config{})
	_, secret := ts.addKey(t, "a", 0, 0)
	real, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(real)
	mode := "announce"
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			proxy.ServeHTTP(w, r) // the model list and metadata are real
			return
		}
		if mode == "announce" {
			conn, bw, _ := http.NewResponseController(w).Hijack()
			defer conn.Close()
			bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1073741000\r\n\r\nabc")
			bw.Flush()
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		chunk := make([]byte, 1<<20)
		for i := 0; i < 64; i++ { // 64 MiB, no Content-Length
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer hostile.Close()
	c, err := Dial(hostile.URL, secret)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.MaxRetries = 0
	for _, m := range []struct{ mode, want string }{{"announce", "announces a reply of 1073741000 bytes"}, {"stream", "exceeds the"}} {
		mode = m.mode
		if _, err := c.Encode(context.Background(), randomImages(2, 1)); err == nil || !strings.Contains(err.Error(), m.want) {
			t.Fatalf("%s: %v, want an error mentioning %q", m.mode, err, m.want)
		}
	}
}

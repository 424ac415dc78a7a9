package serve

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"
)

// postIdem posts x raw with an Idempotency-Key and returns the status, headers and body.
func postIdem(t *testing.T, url, secret, idem string, seed uint64) (int, http.Header, []byte) {
	t.Helper()
	return do(t, "POST", url+"/v1/embeddings", map[string]string{
		"Authorization": "Bearer " + secret, "Content-Type": "application/octet-stream", "X-Shape": "4,3,32,32",
		IdempotencyHeader: idem}, rawBody(randomImages(4, seed)))
}

func TestIdempotencyKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, db string) {
		st, err := OpenStore(db)
		if err != nil {
			t.Fatal(err)
		}
		start := func() *Running {
			r, err := Start(sharedEncoder(t), Config{Store: st, ModelName: "victim", Logger: discardLogger()}, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		srv := start()
		k, secret, err := st.AddKey(context.Background(), "eve", 8, 0)
		if err != nil {
			t.Fatal(err)
		}
		// First request: billed. The same key and body again: answered, not billed, even with
		// the quota (8) otherwise too small for both.
		code, _, first := postIdem(t, srv.URL, secret, "req-1", 1)
		if code != 200 {
			t.Fatalf("%d %s", code, first)
		}
		code, h, again := postIdem(t, srv.URL, secret, "req-1", 1)
		if code != 200 || h.Get("Idempotent-Replayed") != "true" || string(again) != string(first) {
			t.Fatalf("repeat: %d, replayed %q, same answer %v", code, h.Get("Idempotent-Replayed"), string(again) == string(first))
		}
		// The same key with another body: 409, nothing billed.
		if code, _, b := postIdem(t, srv.URL, secret, "req-1", 2); code != http.StatusConflict {
			t.Fatalf("same key, another body: %d %s, want 409", code, b)
		}
		if got := ledgerTotal(t, st, k.ID); got != 4 {
			t.Fatalf("billed %d, want 4 (one request of 4 images)", got)
		}
		// Across a restart: still remembered.
		srv.Stop()
		srv = start()
		defer srv.Stop()
		if code, h, _ := postIdem(t, srv.URL, secret, "req-1", 1); code != 200 || h.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("repeat after a restart: %d, replayed %q", code, h.Get("Idempotent-Replayed"))
		}
		// Concurrent repeats of a new idempotency key (of a key without quota: admission would
		// otherwise refuse some before they are known to be repeats): billed once.
		k2, secret2, err := st.AddKey(context.Background(), "bob", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		codes := make(chan int, 6)
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); c, _, _ := postIdem(t, srv.URL, secret2, "req-2", 3); codes <- c }()
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != 200 {
				t.Fatalf("a concurrent repeat got %d", c)
			}
		}
		if got := ledgerTotal(t, st, k2.ID); got != 4 {
			t.Fatalf("billed %d after 6 concurrent repeats of one 4-image request, want 4", got)
		}
		// A bad key is refused.
		if code, _, b := postIdem(t, srv.URL, secret, "bad key with spaces", 4); code != 400 {
			t.Fatalf("key with spaces: %d %s", code, b)
		}
	})
}

// Past the retention window a key is forgotten: billed again, and cleaned up.
func TestIdempotencyWindow(t *testing.T) {
	eachBackend(t, func(t *testing.T, db string) {
		st := openStore(t, db)
		srv, err := Start(sharedEncoder(t), Config{Store: st, ModelName: "victim", Logger: discardLogger(), IdempotencyWindow: 300 * time.Millisecond}, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Stop()
		k, secret, err := st.AddKey(context.Background(), "eve", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if code, h, b := postIdem(t, srv.URL, secret, "req", 1); code != 200 || h.Get("Idempotent-Replayed") != "" {
				t.Fatalf("request %d: %d %s (replayed %q), want billed", i, code, b, h.Get("Idempotent-Replayed"))
			}
			time.Sleep(400 * time.Millisecond)
		}
		if got := ledgerTotal(t, st, k.ID); got != 8 {
			t.Fatalf("billed %d, want 8: the window had passed", got)
		}
		n, err := st.ForgetBilled(context.Background())
		if err != nil || n != 1 {
			t.Fatalf("clean-up removed %d records (%v), want 1", n, err)
		}
	})
}

// The Open Inference Protocol endpoint honours the header the same way.
func TestIdempotencyOIP(t *testing.T) {
	ts := startServer(t, sharedEncoder(t), Config{})
	k, secret := ts.addKey(t, "eve", 0, 0)
	body, err := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": sharedEncoder(t).Info().InputName,
		"shape": []int{2, 3, 32, 32}, "datatype": "FP32", "data": randomImages(2, 5).Data}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		code, _, b := do(t, "POST", ts.URL+"/v2/models/victim/infer", map[string]string{"Authorization": "Bearer " + secret,
			"Content-Type": "application/json", IdempotencyHeader: "oip-1"}, body)
		if code != 200 {
			t.Fatalf("%d %s", code, b)
		}
	}
	if got := ledgerTotal(t, ts.store, k.ID); got != 2 {
		t.Fatalf("billed %d for three repeats of one 2-image request, want 2", got)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

package serve

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// Gateway mode: a serve in front of another serve's v2 endpoint (as it would be in front of
// Triton) answers what the upstream's model answers, with its own keys, quotas, ledger and
// defenses; the upstream bills the gateway's key for exactly what the gateway answered; an
// upstream that is down is a 502 for the caller, never billed.
func TestGateway(t *testing.T) {
	ctx := context.Background()
	enc := sharedEncoder(t)
	up := startServer(t, enc, Config{})
	upKey, upSecret := up.addKey(t, "gateway", 0, 0)
	remote, name, err := DialUpstream(up.URL+"/v2/models/victim", upSecret)
	if err != nil || name != "victim" {
		t.Fatalf("DialUpstream: name %q, %v", name, err)
	}
	defer remote.Close()
	gw := startServer(t, remote, Config{})
	cust, secret := gw.addKey(t, "customer", 8, 0)

	x := randomImages(4, 11)
	want, err := enc.Encode(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	st, r, b := postRaw(t, gw.URL, secret, x)
	if st != http.StatusOK {
		t.Fatalf("through the gateway: %d %s", st, b)
	}
	assertClose(t, "gateway vs local model", r.flat(), want.Data, 1e-5)
	if st, _, _ := postRaw(t, gw.URL, "sslk_wrong", x); st != http.StatusUnauthorized {
		t.Fatalf("a wrong key at the gateway: %d, want 401", st)
	}
	if st, _, b := postRaw(t, gw.URL, secret, x); st != http.StatusOK {
		t.Fatalf("second request within the quota: %d %s", st, b)
	}
	if st, _, b := postRaw(t, gw.URL, secret, x); st != http.StatusPaymentRequired {
		t.Fatalf("over the gateway's quota: %d %s, want 402", st, b)
	}
	if g, u := ledgerTotal(t, gw.store, cust.ID), ledgerTotal(t, up.store, upKey.ID); g != 8 || u != 8 {
		t.Fatalf("gateway billed %d, upstream billed the gateway %d: want 8 and 8 (wrong key and over-quota requests never reach the upstream)", g, u)
	}

	// Defenses run at the gateway.
	noisy := startServer(t, remote, Config{Defenses: []string{"noise:sigma=0.5"}, DefenseSeed: 3})
	_, ns := noisy.addKey(t, "n", 0, 0)
	if st, r, b := postRaw(t, noisy.URL, ns, x); st != http.StatusOK || maxAbsDiff(r.flat(), want.Data) < 0.1 {
		t.Fatalf("noise defense at the gateway: %d, max |diff| to the model %.3g: want 200 and noise (%s)", st, maxAbsDiff(r.flat(), want.Data), b)
	}

	// The upstream goes away: 502, not billed, nothing of the upstream in the message.
	up.stop()
	openKey, open := gw.addKey(t, "open", 0, 0)
	st, _, b = postRaw(t, gw.URL, open, x)
	var e struct{ Error, Code string }
	json.Unmarshal(b, &e)
	if st != http.StatusBadGateway || e.Code != "upstream_failed" || strings.Contains(string(b), "127.0.0.1") {
		t.Fatalf("upstream down: %d %s, want 502 upstream_failed without the upstream's address", st, b)
	}
	if n := ledgerTotal(t, gw.store, openKey.ID); n != 0 {
		t.Fatalf("a failed upstream call was billed: %d", n)
	}
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return 0
	}
	m := 0.0
	for i := range a {
		m = max(m, float64(abs32(a[i]-b[i])))
	}
	return m
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

var _ infer.Encoder = (*upstream)(nil)

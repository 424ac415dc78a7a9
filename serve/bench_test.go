package serve

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkThroughput16Clients: 16 concurrent clients send 1-image raw requests (reply
// raw) to a server on loopback, with and without dynamic batching. Reports images/s and
// the mean images per model call.
//
//	go test -run '^$' -bench Throughput16Clients -benchtime 2000x ./serve/
func BenchmarkThroughput16Clients(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"nobatch-1worker", Config{MaxBatch: 1, Workers: 1}},
		{"nobatch-16workers", Config{MaxBatch: 1, Workers: 16}},
		{"batch64-2ms-1worker", Config{MaxBatch: 64, MaxDelay: 2 * time.Millisecond, Workers: 1}},
		{"batch64-2ms-2workers", Config{MaxBatch: 64, MaxDelay: 2 * time.Millisecond, Workers: 2}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ce := &countingEncoder{Encoder: sharedEncoder(b)}
			ts := startServer(b, ce, tc.cfg)
			_, secret := ts.addKey(b, "bench", 0, 0)
			body := string(rawBody(randomImages(1, 1)))
			tr := &http.Transport{MaxIdleConnsPerHost: 32}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			var next atomic.Int64
			var failed atomic.Value
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						req, _ := http.NewRequest("POST", ts.URL+"/v1/embeddings", strings.NewReader(body))
						req.Header.Set("Authorization", "Bearer "+secret)
						req.Header.Set("Content-Type", "application/octet-stream")
						req.Header.Set("Accept", "application/octet-stream")
						req.Header.Set("X-Shape", "1,3,32,32")
						resp, err := hc.Do(req)
						if err != nil {
							failed.Store(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							failed.Store(fmt.Errorf("status %d", resp.StatusCode))
							return
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			if err := failed.Load(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "images/s")
			if testing.Verbose() {
				_, _, m := do(b, "GET", ts.URL+"/metrics", nil, nil)
				for _, line := range strings.Split(string(m), "\n") {
					for _, p := range []string{"ssl_onnx_encode_duration_seconds_sum", "ssl_onnx_encode_duration_seconds_count",
						"ssl_onnx_ledger_commit_seconds_sum", "ssl_onnx_ledger_commit_seconds_count", "ssl_onnx_ledger_commit_entries_sum",
						`ssl_onnx_request_duration_seconds_sum{endpoint="embeddings"}`} {
						if strings.HasPrefix(line, p+" ") {
							b.Log(line)
						}
					}
				}
			}
			ce.mu.Lock()
			b.ReportMetric(float64(b.N)/float64(len(ce.calls)), "images/call")
			ce.mu.Unlock()
		})
	}
}

package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/serve"
)

// HTTPResult is one load pattern against an HTTP server: Concurrency clients, each sending
// requests of Batch images back to back.
type HTTPResult struct {
	Model    string `json:"model"`
	Server   string `json:"server"`   // "in-process, batching 64" / "in-process, no batching" / the URL
	Protocol string `json:"protocol"` // "v1 raw float32" or "v2 JSON"
	// The in-process server's model calls at once and ONNX Runtime threads (0 for --url).
	Workers       int     `json:"server_workers,omitempty"`
	ServerThreads int     `json:"server_threads,omitempty"`
	Batch         int     `json:"images_per_request"`
	Concurrency   int     `json:"concurrency"`
	ImagesPS      float64 `json:"images_per_s"`
	P50ms         float64 `json:"p50_ms"` // per request
	P99ms         float64 `json:"p99_ms"`
	Requests      int     `json:"requests"`
	// VsRaw is ImagesPS over in-process ONNX Runtime at batch RawBatch, measured in the same
	// run (absent for --url runs without a local model).
	RawBatch int     `json:"raw_batch,omitempty"`
	VsRaw    float64 `json:"vs_raw,omitempty"`
	// VsRawSame compares with raw ONNX Runtime run the way the server runs it (its workers
	// as concurrent callers, its threads), when that differs from VsRaw's reference.
	VsRawSame float64 `json:"vs_raw_same_config,omitempty"`
}

// load runs conc goroutines that each encode batch-image inputs back to back for at least
// minTime (and 3 calls) and returns throughput and per-call latency percentiles.
func load(ctx context.Context, enc infer.Encoder, batch, conc, c, h, w int, minTime time.Duration) (ips, p50, p99 float64, calls int, err error) {
	rng := rand.New(rand.NewSource(int64(batch)))
	x := infer.Images{N: batch, C: c, H: h, W: w, Data: make([]float32, batch*c*h*w)}
	for i := range x.Data {
		x.Data[i] = rng.Float32()
	}
	if _, err := enc.Encode(ctx, x); err != nil { // warm-up (and connection set-up)
		return 0, 0, 0, 0, err
	}
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Since(start) < minTime || len(mine) < 3 {
				t0 := time.Now()
				if _, err := enc.Encode(ctx, x); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total := time.Since(start)
	if len(errs) > 0 {
		return 0, 0, 0, 0, fmt.Errorf("%d of %d clients failed, first: %w", len(errs), conc, errs[0])
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	return float64(batch*len(lat)) / total.Seconds(), pct(0.5), pct(0.99), len(lat), nil
}

// httpPatterns measures one server: BatchClients clients at each batch size (one client
// waits for each reply, so the model idles while a request travels and is recorded; two
// overlap that with the other's model call), then Concurrency single-image clients.
func httpPatterns(ctx context.Context, c Config, client *serve.Client, model, server string, raw, same map[int]float64, log io.Writer) ([]HTTPResult, error) {
	info := client.Info()
	ch, h, w := dim(info.InputShape, 1, 3), dim(info.InputShape, 2, 32), dim(info.InputShape, 3, 32)
	type pattern struct{ batch, conc int }
	var ps []pattern
	clients := c.BatchClients
	if len(clients) == 0 {
		clients = []int{1}
	}
	for _, b := range c.Batches {
		for _, n := range clients {
			ps = append(ps, pattern{b, n})
		}
	}
	for _, n := range c.Concurrency {
		if n > 1 {
			ps = append(ps, pattern{1, n})
		}
	}
	var out []HTTPResult
	for _, p := range ps {
		ips, p50, p99, calls, err := load(ctx, client, p.batch, p.conc, ch, h, w, c.MinTime)
		if err != nil {
			return nil, fmt.Errorf("%s, batch %d, %d clients: %w", server, p.batch, p.conc, err)
		}
		r := HTTPResult{Model: model, Server: server, Protocol: client.Protocol(), Batch: p.batch, Concurrency: p.conc,
			ImagesPS: ips, P50ms: p50, P99ms: p99, Requests: calls}
		// A batch request competes with raw ORT at the same batch; many single-image clients
		// with the server's batches of up to 64 compete with raw batch 64.
		r.RawBatch = p.batch
		if p.batch == 1 && p.conc > 1 {
			r.RawBatch = 64
		}
		if v, ok := raw[r.RawBatch]; ok && v > 0 {
			r.VsRaw = ips / v
			if v := same[r.RawBatch]; v > 0 {
				r.VsRawSame = ips / v
			}
		} else {
			r.RawBatch = 0
		}
		fmt.Fprintf(log, "HTTP %s %s: batch %d x %d clients: %.0f images/s, p50 %.1f ms, p99 %.1f ms", model, server, p.batch, p.conc, ips, p50, p99)
		if r.VsRaw > 0 {
			fmt.Fprintf(log, " (%.2fx raw batch %d", r.VsRaw, r.RawBatch)
			if r.VsRawSame > 0 {
				fmt.Fprintf(log, "; %.2fx raw with the server's %d threads x %d callers", r.VsRawSame, c.serveThreads(), c.serveWorkers())
			}
			fmt.Fprint(log, ")")
		}
		fmt.Fprintln(log)
		out = append(out, r)
	}
	return out, nil
}

// inProcessHTTP serves the model at path on a loopback port twice (dynamic batching up to 64
// images, and none) with a throwaway key store, as `ssl-onnx serve` does (ONNX Runtime
// threads that do not spin), and measures both as a client would.
func inProcessHTTP(ctx context.Context, c Config, path string, raw, same map[int]float64, log io.Writer) ([]HTTPResult, error) {
	model := filepath.Base(path)
	enc, err := infer.OpenORT(path, infer.Options{Threads: c.serveThreads(), Device: c.Device, NoSpin: true})
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	store, err := serve.OpenStore(filepath.Join(c.TempDir, fmt.Sprintf("bench-%d.db", time.Now().UnixNano())))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	_, secret, err := store.AddKey(ctx, "bench", 0, 0)
	if err != nil {
		return nil, err
	}
	var out []HTTPResult
	for _, v := range []struct {
		name     string
		maxBatch int
		only     bool // only the concurrent single-image patterns
	}{{"in-process, batching 64", 64, false}, {"in-process, no batching", 1, true}} {
		srv, err := serve.Start(enc, serve.Config{Store: store, ModelName: "bench", MaxBatch: v.maxBatch, Workers: c.serveWorkers(),
			// One key for all the clients: let every one of them have its request in flight.
			MaxInflight: slices.Max(slices.Concat([]int{serve.DefaultMaxInflight}, c.Concurrency, c.BatchClients)),
			Logger:      slog.New(slog.NewTextHandler(io.Discard, nil))}, "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		client, err := serve.Dial(srv.URL, secret)
		if err != nil {
			srv.Stop()
			return nil, err
		}
		cc := c
		if v.only {
			cc.Batches = nil
		}
		res, err := httpPatterns(ctx, cc, client, model, v.name, raw, same, log)
		for i := range res {
			res[i].Workers, res[i].ServerThreads = c.serveWorkers(), c.serveThreads()
		}
		client.Close()
		srv.Stop()
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
	}
	return out, nil
}

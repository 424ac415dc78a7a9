// Package bench measures ssl-onnx's throughput: ONNX Runtime inference per model and batch
// size (images/s, p50/p99 latency), the gotch SimCLR training step, and optionally the same
// step in PyTorch (bench/simclr_step.py) on the same libtorch, so ratios come from one run.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/serve"
	"github.com/ssl-onnx/ssl-onnx/train"
)

// Config selects what to measure.
type Config struct {
	Models    []string      // ONNX files; empty = random ResNet-18 CIFAR and ImageNet stems at 32x32
	Batches   []int         // inference batch sizes
	MinTime   time.Duration // per inference measurement
	Threads   int
	Device    string   // cpu, cuda or cuda:N: ONNX Runtime, libtorch and PyTorch alike
	TrainStem []string // stems for the training-step benchmark; empty = skip
	TrainBS   []int    // pairs per training step, each measured (default 64)
	// Precisions of the training step: fp32 (default) and/or bf16, each in gotch and PyTorch.
	Precisions []string
	Steps      int
	Rounds     int    // gotch/PyTorch alternations for the training step
	PyTorch    string // path of bench/simclr_step.py to compare against; "" = skip
	Python     string // interpreter for PyTorch
	TempDir    string
	// HTTP also serves each model on a loopback port and measures it through the API.
	HTTP bool
	// ServeWorkers and ServeThreads configure the in-process server as `serve --workers
	// --threads` do (default 1 worker of Threads threads). When they differ from one caller
	// of Threads threads, raw ONNX Runtime is also measured the same way (ServeWorkers
	// concurrent callers of ServeThreads-thread sessions), so the served results compare
	// with both.
	ServeWorkers, ServeThreads int
	Concurrency                []int // concurrent single-image clients for the HTTP patterns
	BatchClients               []int // concurrent clients sending each of Batches (default 1)
	// URL benchmarks a running server instead (our API, or any Open Inference Protocol v2
	// server such as Triton with ".../v2/models/<name>"), with APIKey if it needs one.
	URL, APIKey string
}

// Inference is one model at one batch size, called by Callers goroutines at once.
type Inference struct {
	Model     string  `json:"model"`
	Batch     int     `json:"batch"`
	Threads   int     `json:"threads"` // ONNX Runtime intra-op threads
	Callers   int     `json:"callers"`
	ImagesPS  float64 `json:"images_per_s"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	Calls     int     `json:"calls"`
	InputSize string  `json:"input"`
}

// TrainStep is the SimCLR step throughput of gotch (and PyTorch when measured).
type TrainStep struct {
	Arch       string  `json:"arch"`
	Stem       string  `json:"stem"`
	Batch      int     `json:"batch"`
	Threads    int     `json:"threads"`
	Precision  string  `json:"precision"`
	GotchIPS   float64 `json:"gotch_images_per_s"`
	PyTorchIPS float64 `json:"pytorch_images_per_s,omitempty"`
	Ratio      float64 `json:"gotch_over_pytorch,omitempty"`
	// Every round's measurement (the fields above are their medians).
	GotchRounds   []float64 `json:"gotch_rounds"`
	PyTorchRounds []float64 `json:"pytorch_rounds,omitempty"`
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Report is what Run measured.
type Report struct {
	Machine   string       `json:"machine"`
	Threads   int          `json:"threads"`
	Inference []Inference  `json:"inference"`
	HTTP      []HTTPResult `json:"http,omitempty"`
	Training  []TrainStep  `json:"training"`
	When      time.Time    `json:"when"`
}

// Run performs the measurements, printing progress to log.
func Run(ctx context.Context, c Config, log io.Writer) (*Report, error) {
	r := &Report{Machine: fmt.Sprintf("%s/%s, %d cores", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()), Threads: c.Threads, When: time.Now().UTC()}
	modelsToRun := c.Models
	if len(modelsToRun) == 0 && c.URL == "" {
		for _, stem := range []string{"cifar", "imagenet"} {
			p := filepath.Join(c.TempDir, "resnet18-"+stem+"-random.onnx")
			if err := export.RandomModel(p, models.Spec{Arch: "resnet18", Stem: stem, Head: "simclr", OutDim: 128, InputC: 3, InputHW: 32}, 1); err != nil {
				return nil, err
			}
			modelsToRun = append(modelsToRun, p)
		}
	}
	var raw map[int]float64 // in-process images/s per batch of the last model
	for _, path := range modelsToRun {
		batches := c.Batches
		if c.HTTP && !slices.Contains(batches, 64) {
			batches = append(slices.Clone(batches), 64) // the reference for concurrent clients
		}
		res, err := rawRuns(ctx, c, path, c.Threads, 1, batches, log)
		if err != nil {
			return nil, err
		}
		r.Inference = append(r.Inference, res...)
		raw = perBatch(res)
		var same map[int]float64 // raw the way the in-process server runs the model
		if st, sw := c.serveThreads(), c.serveWorkers(); c.HTTP && (st != c.Threads || sw != 1) {
			res, err := rawRuns(ctx, c, path, st, sw, batches, log)
			if err != nil {
				return nil, err
			}
			r.Inference = append(r.Inference, res...)
			same = perBatch(res)
		}
		if c.HTTP {
			res, err := inProcessHTTP(ctx, c, path, raw, same, log)
			if err != nil {
				return nil, fmt.Errorf("HTTP benchmark of %s: %w", path, err)
			}
			r.HTTP = append(r.HTTP, res...)
		}
	}
	if c.URL != "" {
		client, err := serve.Dial(c.URL, c.APIKey)
		if err != nil {
			return nil, err
		}
		if len(modelsToRun) != 1 {
			raw = nil // no single local model to compare the server with
		}
		res, err := httpPatterns(ctx, c, client, client.Model(), c.URL, raw, nil, log)
		client.Close()
		if err != nil {
			return nil, err
		}
		r.HTTP = append(r.HTTP, res...)
	}
	precisions := c.Precisions
	if len(precisions) == 0 {
		precisions = []string{"fp32"}
	}
	batches := c.TrainBS
	if len(batches) == 0 {
		batches = []int{64}
	}
	for _, stem := range c.TrainStem {
		for _, bs := range batches {
			for _, prec := range precisions {
				ts, err := trainStep(ctx, c, stem, bs, prec, log)
				if err != nil {
					return nil, err
				}
				r.Training = append(r.Training, ts)
			}
		}
	}
	return r, nil
}

// trainStep measures the SimCLR step of one stem at one precision: gotch and PyTorch take
// turns, Rounds times, and the medians are compared (the machine's load drifts, so
// interleaving keeps the ratio honest).
func trainStep(ctx context.Context, c Config, stem string, bs int, prec string, log io.Writer) (TrainStep, error) {
	ts := TrainStep{Arch: "resnet18", Stem: stem, Batch: bs, Threads: c.Threads, Precision: prec}
	var gotchIPS, torchIPS []float64
	for round := 0; round < max(c.Rounds, 1); round++ {
		ips, err := train.StepBenchmark(train.Config{Arch: "resnet18", Stem: stem, Size: 32, BatchSize: bs, Threads: c.Threads,
			Device: c.Device, Precision: prec, Seed: 1}, 1, c.Steps)
		if err != nil {
			return ts, err
		}
		gotchIPS = append(gotchIPS, ips)
		fmt.Fprintf(log, "round %d: gotch SimCLR step resnet18/%s batch %d %s: %.1f images/s\n", round+1, stem, bs, prec, ips)
		if c.PyTorch == "" {
			continue
		}
		ips, err = pytorchStep(ctx, c, stem, bs, prec)
		if err != nil {
			return ts, err
		}
		torchIPS = append(torchIPS, ips)
		fmt.Fprintf(log, "round %d: PyTorch SimCLR step resnet18/%s batch %d %s: %.1f images/s\n", round+1, stem, bs, prec, ips)
	}
	ts.GotchIPS, ts.GotchRounds = median(gotchIPS), gotchIPS
	if len(torchIPS) > 0 {
		ts.PyTorchIPS, ts.PyTorchRounds = median(torchIPS), torchIPS
		ts.Ratio = ts.GotchIPS / ts.PyTorchIPS
	}
	return ts, nil
}

// pytorchStep runs the PyTorch reference of the step once and returns its images/s.
func pytorchStep(ctx context.Context, c Config, stem string, bs int, prec string) (float64, error) {
	cmd := exec.CommandContext(ctx, c.Python, c.PyTorch, "--arch", "resnet18", "--stem", stem, "--size", "32",
		"--batch-size", fmt.Sprint(bs), "--threads", fmt.Sprint(c.Threads), "--steps", fmt.Sprint(c.Steps), "--warmup", "1",
		"--device", cmp.Or(c.Device, "cpu"), "--precision", prec)
	// PyTorch gets the allocator settings gotch runs with (models/torchnet/malloc_linux.go).
	cmd.Env = append(os.Environ(), "MALLOC_ARENA_MAX=1", "MALLOC_MMAP_MAX_=0", "MALLOC_TRIM_THRESHOLD_=2147483647")
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("pytorch reference %s: %w", c.PyTorch, err)
	}
	var py struct {
		ImagesPS float64 `json:"images_per_s"`
	}
	if err := json.Unmarshal(out, &py); err != nil {
		return 0, fmt.Errorf("pytorch reference printed %q: %w", out, err)
	}
	return py.ImagesPS, nil
}

func (c Config) serveWorkers() int { return max(c.ServeWorkers, 1) }
func (c Config) serveThreads() int {
	if c.ServeThreads > 0 {
		return c.ServeThreads
	}
	return c.Threads
}

// rawRuns measures in-process ONNX Runtime (threads intra-op threads) at each batch size,
// with callers goroutines calling Encode at once.
func rawRuns(ctx context.Context, c Config, path string, threads, callers int, batches []int, log io.Writer) ([]Inference, error) {
	enc, err := infer.OpenORT(path, infer.Options{Threads: threads, Device: c.Device})
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	info := enc.Info()
	ch, h, w := dim(info.InputShape, 1, 3), dim(info.InputShape, 2, 32), dim(info.InputShape, 3, 32)
	var out []Inference
	for _, b := range batches {
		if info.FixedBatch > 0 && b%info.FixedBatch != 0 {
			continue
		}
		ips, p50, p99, calls, err := load(ctx, enc, b, callers, ch, h, w, c.MinTime)
		if err != nil {
			return nil, err
		}
		res := Inference{Model: filepath.Base(path), Batch: b, Threads: threads, Callers: callers, ImagesPS: ips, P50ms: p50, P99ms: p99,
			Calls: calls, InputSize: fmt.Sprintf("%dx%dx%d", ch, h, w)}
		fmt.Fprintf(log, "ORT %s batch %d (%d threads, %d callers): %.0f images/s, p50 %.1f ms, p99 %.1f ms\n",
			res.Model, b, threads, callers, res.ImagesPS, res.P50ms, res.P99ms)
		out = append(out, res)
	}
	return out, nil
}

func perBatch(res []Inference) map[int]float64 {
	m := map[int]float64{}
	for _, r := range res {
		m[r.Batch] = r.ImagesPS
	}
	return m
}

func dim(shape []int64, i int, def int) int {
	if i < len(shape) && shape[i] > 0 {
		return int(shape[i])
	}
	return def
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

package augment

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// memSource serves n random h x w images held in memory.
func memSource(n, h, w int) Source {
	imgs := make([][]float32, n)
	for i := range imgs {
		imgs[i] = testImage(uint64(100+i), h, w)
	}
	return func(i int, dst []float32) error {
		if i < 0 || i >= n {
			return fmt.Errorf("index %d out of range [0, %d)", i, n)
		}
		copy(dst, imgs[i])
		return nil
	}
}

func makeBatches(n, size int) [][]int {
	var out [][]int
	for start := 0; start < n; start += size {
		b := make([]int, 0, size)
		for i := start; i < min(start+size, n); i++ {
			b = append(b, (i*37)%n) // a shuffled order
		}
		out = append(out, b)
	}
	return out
}

func collect(t *testing.T, ch <-chan Pair) []Pair {
	t.Helper()
	var out []Pair
	for pr := range ch {
		if pr.Err != nil {
			t.Fatalf("pipeline error: %v", pr.Err)
		}
		out = append(out, pr)
	}
	return out
}

// TestPipelineWorkersAgree checks that the batches do not depend on the number
// of workers or on prefetch, and that they hold the views View gives.
func TestPipelineWorkersAgree(t *testing.T) {
	const n, h, w = 50, 36, 40
	p := SimCLR(32)
	src := memSource(n, h, w)
	batches := makeBatches(n, 16)
	ref := collect(t, NewPipeline(context.Background(), PipelineConfig{Params: p, Source: src, H: h, W: w, Batches: batches, Seed: 7, Epoch: 3, Workers: 1, Prefetch: 0}))
	if len(ref) != len(batches) {
		t.Fatalf("got %d batches, want %d", len(ref), len(batches))
	}
	for _, c := range []struct{ workers, prefetch int }{{4, 0}, {4, 3}, {0, 1}, {64, 2}} {
		got := collect(t, NewPipeline(context.Background(), PipelineConfig{Params: p, Source: src, H: h, W: w, Batches: batches, Seed: 7, Epoch: 3, Workers: c.workers, Prefetch: c.prefetch}))
		if len(got) != len(ref) {
			t.Fatalf("workers %d: got %d batches, want %d", c.workers, len(got), len(ref))
		}
		for b := range ref {
			if !slices.Equal(got[b].Index, ref[b].Index) || !slices.Equal(got[b].View1, ref[b].View1) || !slices.Equal(got[b].View2, ref[b].View2) {
				t.Fatalf("workers %d prefetch %d: batch %d differs from workers 1", c.workers, c.prefetch, b)
			}
		}
	}
	view := 3 * 32 * 32
	img := make([]float32, 3*h*w)
	for b, pr := range ref {
		if pr.N != len(batches[b]) || len(pr.View1) != pr.N*view || len(pr.View2) != pr.N*view {
			t.Fatalf("batch %d: N %d, views %d/%d values, want N %d", b, pr.N, len(pr.View1), len(pr.View2), len(batches[b]))
		}
		for j, i := range pr.Index {
			if err := src(i, img); err != nil {
				t.Fatal(err)
			}
			for v, got := range [][]float32{pr.View1[j*view : (j+1)*view], pr.View2[j*view : (j+1)*view]} {
				want := make([]float32, view)
				if err := p.View(RNG(7, 3, i, v), img, h, w, want); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("batch %d image %d view %d differs from View", b, i, v)
				}
			}
		}
	}
	if slices.Equal(ref[0].View1, ref[0].View2) {
		t.Error("the two views of a batch are identical")
	}
}

// TestPipelineCancel checks that cancelling ctx closes the channel promptly and
// leaves no goroutine behind, even when nobody reads.
func TestPipelineCancel(t *testing.T) {
	const n, h, w = 4096, 32, 32
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	ch := NewPipeline(ctx, PipelineConfig{Params: SimCLR(32), Source: memSource(n, h, w), H: h, W: w, Batches: makeBatches(n, 64), Seed: 1, Epoch: 0, Workers: 4, Prefetch: 1})
	if pr := <-ch; pr.Err != nil || pr.N != 64 {
		t.Fatalf("first batch: N %d err %v", pr.N, pr.Err)
	}
	time.Sleep(20 * time.Millisecond) // let the producer block on a full channel
	cancel()
	deadline := time.After(5 * time.Second)
	batches := 0
	for done := false; !done; {
		select {
		case _, ok := <-ch:
			if !ok {
				done = true
			} else {
				batches++
			}
		case <-deadline:
			t.Fatal("channel not closed 5 s after cancel")
		}
	}
	if batches > 2 {
		t.Errorf("%d batches arrived after cancel, want at most the prefetched one and the one in flight", batches)
	}
	for range 100 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("%d goroutines after cancel, %d before", runtime.NumGoroutine(), before)
}

func TestPipelineErrors(t *testing.T) {
	const h, w = 32, 32
	good := memSource(20, h, w)
	failing := func(i int, dst []float32) error {
		if i == 13 {
			return errors.New("disk on fire")
		}
		return good(i, dst)
	}
	for _, c := range []struct {
		name    string
		p       Params
		src     Source
		h       int
		batches [][]int
		want    string
		before  int // batches expected before the error
	}{
		{"bad params", Params{}, memSource(4, h, w), h, [][]int{{0}}, "Size", 0},
		{"nil source", SimCLR(32), nil, h, [][]int{{0}}, "nil source", 0},
		{"bad size", SimCLR(32), memSource(4, h, w), 0, [][]int{{0}}, "image size", 0},
		{"empty batch", SimCLR(32), memSource(4, h, w), h, [][]int{{0, 1}, {}}, "batch 1 is empty", 1},
		{"source error", SimCLR(32), failing, h, [][]int{{0, 1, 2}, {12, 13, 14}, {15}}, "index 13): disk on fire", 1},
		{"out of range", SimCLR(32), memSource(4, h, w), h, [][]int{{0, 9}}, "out of range", 0},
	} {
		var got []Pair
		for pr := range NewPipeline(context.Background(), PipelineConfig{Params: c.p, Source: c.src, H: c.h, W: w, Batches: c.batches, Seed: 1, Epoch: 0, Workers: 2, Prefetch: 1}) {
			got = append(got, pr)
		}
		if len(got) != c.before+1 {
			t.Errorf("%s: got %d pairs, want %d batches then the error", c.name, len(got), c.before)
			continue
		}
		last := got[len(got)-1]
		if last.Err == nil || !strings.Contains(last.Err.Error(), c.want) {
			t.Errorf("%s: last pair error %v, want one containing %q", c.name, last.Err, c.want)
		}
		for _, pr := range got[:c.before] {
			if pr.Err != nil || pr.N == 0 {
				t.Errorf("%s: batch before the error has N %d err %v", c.name, pr.N, pr.Err)
			}
		}
	}
}

// BenchmarkPipeline measures batches of 256 images, two 32x32 SimCLR views
// each, from 32x32 sources in memory, with GOMAXPROCS workers.
func BenchmarkPipeline(b *testing.B) {
	const n, h, w, batch = 4096, 32, 32, 256
	src := memSource(n, h, w)
	all := makeBatches(n, batch)
	batches := make([][]int, b.N)
	for i := range batches {
		batches[i] = all[i%len(all)]
	}
	b.ResetTimer()
	start := time.Now()
	for pr := range NewPipeline(context.Background(), PipelineConfig{Params: SimCLR(32), Source: src, H: h, W: w, Batches: batches, Seed: 1, Epoch: 0, Workers: 0, Prefetch: 2}) {
		if pr.Err != nil {
			b.Fatal(pr.Err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "images/s")
}

// TestPipelineOneView checks a one-view pipeline: View2 is nil and View1 is the first view of
// the two-view pipeline, image by image; more than two views are refused.
func TestPipelineOneView(t *testing.T) {
	const n, h, w = 20, 28, 28
	src, batches := memSource(n, h, w), makeBatches(n, 8)
	c := PipelineConfig{Params: Light(32, 0.5), Source: src, H: h, W: w, Batches: batches, Seed: 3, Epoch: 1, Workers: 2}
	two := collect(t, NewPipeline(context.Background(), c))
	c.Views = 1
	one := collect(t, NewPipeline(context.Background(), c))
	if len(one) != len(two) {
		t.Fatalf("one view: %d batches, two views: %d", len(one), len(two))
	}
	for b := range one {
		if one[b].View2 != nil || !slices.Equal(one[b].View1, two[b].View1) || !slices.Equal(one[b].Index, two[b].Index) {
			t.Fatalf("batch %d: one-view pipeline differs from the first view of the two-view one (View2 nil: %v)", b, one[b].View2 == nil)
		}
	}
	c.Views = 3
	pr := <-NewPipeline(context.Background(), c)
	if pr.Err == nil || !strings.Contains(pr.Err.Error(), "3 views per image, want 1 or 2") {
		t.Errorf("three views: got %v", pr.Err)
	}
}

package train

import (
	"math"
	"testing"
)

// TestCosineLR checks the schedule at hand-computed points: linear warm-up to base, then
// base/2 (1 + cos(pi (e - warmup) / (epochs - warmup))).
func TestCosineLR(t *testing.T) {
	tests := []struct {
		base                  float64
		epoch, warmup, epochs int
		want                  float64
	}{
		{1, 0, 2, 6, 0.5},                 // warm-up: (0+1)/2
		{1, 1, 2, 6, 1},                   // warm-up ends at base
		{1, 2, 2, 6, 1},                   // cosine starts at base
		{1, 3, 2, 6, 0.8535533905932737},  // (1 + cos(pi/4)) / 2
		{1, 4, 2, 6, 0.5},                 // half way
		{1, 5, 2, 6, 0.14644660940672624}, // (1 + cos(3pi/4)) / 2
		{3e-4, 0, 10, 200, 3e-5},          // reference defaults: first warm-up epoch
		{3e-4, 9, 10, 200, 3e-4},
		{3e-4, 105, 10, 200, 1.5e-4}, // (105-10)/190 = 1/2
		{0.05, 0, 0, 1, 0.05},        // one epoch, no warm-up
		{0.05, 1, 0, 2, 0.025},       // cos(pi/2)
		{0.05, 3, 0, 4, 0.05 * 0.14644660940672624},
		{0.1, 5, 10, 5, 0.1 * 6 / 10}, // warm-up longer than the run: still in warm-up
		{0.1, 5, 5, 5, 0.1},           // no cosine span left: base
	}
	for _, tc := range tests {
		got := CosineLR(tc.base, tc.epoch, tc.warmup, tc.epochs)
		if math.Abs(got-tc.want) > 1e-12*math.Max(1, math.Abs(tc.want)) {
			t.Errorf("CosineLR(%g, epoch %d, warmup %d, epochs %d) = %.15g, want %.15g", tc.base, tc.epoch, tc.warmup, tc.epochs, got, tc.want)
		}
	}
}

package eval

import (
	"fmt"
	"math"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// Features are labelled representation vectors: row i of X has label Y[i], a class in
// 0..Classes-1.
type Features struct {
	X       infer.Vectors
	Y       []int
	Classes int
}

// Validate checks that X is well formed (N >= 1, D >= 1, len(Data) == N*D, every value
// finite), that there is one label per row and that every label is in 0..Classes-1.
func (f Features) Validate() error {
	x := f.X
	if x.N < 1 || x.D < 1 {
		return fmt.Errorf("features are %d x %d: expected at least one row and one dimension", x.N, x.D)
	}
	if len(x.Data) != x.N*x.D {
		return fmt.Errorf("features hold %d values: expected N*D = %d*%d = %d", len(x.Data), x.N, x.D, x.N*x.D)
	}
	if len(f.Y) != x.N {
		return fmt.Errorf("features have %d labels: expected one per row, %d", len(f.Y), x.N)
	}
	if f.Classes < 1 {
		return fmt.Errorf("features have %d classes: expected at least 1", f.Classes)
	}
	for i, y := range f.Y {
		if y < 0 || y >= f.Classes {
			return fmt.Errorf("label %d of row %d: expected a class in 0..%d", y, i, f.Classes-1)
		}
	}
	for i, v := range x.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("feature %d of row %d is %v: expected finite values", i%x.D, i/x.D, v)
		}
	}
	return nil
}

// checkPair validates a train/test pair: both valid, same dimension and same classes.
func checkPair(train, test Features) error {
	if err := train.Validate(); err != nil {
		return fmt.Errorf("train %w", err)
	}
	if err := test.Validate(); err != nil {
		return fmt.Errorf("test %w", err)
	}
	if train.X.D != test.X.D {
		return fmt.Errorf("test features have dimension %d: expected the train dimension %d", test.X.D, train.X.D)
	}
	if train.Classes != test.Classes {
		return fmt.Errorf("test features have %d classes: expected the train's %d", test.Classes, train.Classes)
	}
	return nil
}

package eval

import (
	"context"
	"fmt"
	"io"
)

// TrainClassifier trains the linear probe of cfg on the encoder at path (features of the
// train split, scored on the test split) and returns it: the classifier that turns the
// encoder into the victim of the label-stealing baseline (see export.AppendClassifier and
// ProbeResult.RawWeights).
func TrainClassifier(ctx context.Context, cfg Config, path string, log io.Writer) (ProbeResult, int, error) {
	if log == nil {
		log = io.Discard
	}
	cfg.Models, cfg.Reference, cfg.Baselines = []string{path}, "", nil
	if err := cfg.validate(); err != nil {
		return ProbeResult{}, 0, err
	}
	train, test, ytr, yte, classes, err := cfg.splits()
	if err != nil {
		return ProbeResult{}, 0, err
	}
	xtr, xte, _, err := cfg.encoderFeatures(ctx, path, "features", train, test, log)
	if err != nil {
		return ProbeResult{}, 0, err
	}
	res, err := LinearProbe(Features{X: xtr, Y: ytr, Classes: classes}, Features{X: xte, Y: yte, Classes: classes}, cfg.Probe)
	if err != nil {
		return ProbeResult{}, 0, fmt.Errorf("%s: %w", path, err)
	}
	return res, classes, nil
}

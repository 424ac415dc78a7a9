package eval

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// trainClassifier trains the linear probe of cfg on the encoder at path (features of the
// train split, scored on the test split) and returns it: the classifier that turns the
// encoder into the victim of the label-stealing baseline (see export.AppendClassifier and
// ProbeResult.RawWeights).
func trainClassifier(ctx context.Context, cfg Config, path string, log io.Writer) (ProbeResult, int, error) {
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

// WriteClassifier trains the classifier of the encoder at path (eval's linear probe on its
// train-split features, scored on the test split) and writes
// encoder + classifier as one ONNX file at out, whose output is the class scores "logits";
// meta is added to its metadata (with the classifier's test accuracy).
func WriteClassifier(ctx context.Context, cfg Config, path, out string, meta map[string]string, log io.Writer) (ProbeResult, int, error) {
	probe, classes, err := trainClassifier(ctx, cfg, path, log)
	if err != nil {
		return ProbeResult{}, 0, err
	}
	m, err := onnxpb.ReadFile(path)
	if err != nil {
		return ProbeResult{}, 0, err
	}
	md := map[string]string{"classifier_dataset": cfg.Dataset, "classifier_test_top1": strconv.FormatFloat(probe.Top1, 'f', 4, 64)}
	for k, v := range meta {
		md[k] = v
	}
	w, b := probe.RawWeights()
	if err := export.AppendClassifier(m, w, b, classes, md); err != nil {
		return ProbeResult{}, 0, fmt.Errorf("%s: %w", path, err)
	}
	return probe, classes, onnxpb.WriteFile(out, m)
}

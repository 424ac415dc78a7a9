package watermark

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/infer"
)

// DefaultAlpha is the significance level of Verify's decision.
const DefaultAlpha = 0.05

// Verdicts of Verify.
const (
	VerdictPresent = "watermark present (p < alpha)"
	VerdictAbsent  = "no evidence of the watermark"
)

// VerifyConfig holds Verify's optional knobs; the zero value takes the defaults.
type VerifyConfig struct {
	// Alpha is the significance level (default DefaultAlpha).
	Alpha float64
	// Normalization is the suspect encoder's input normalisation, applied after rotation:
	// "auto" (default: the model's "normalization" metadata), "none" or a dataset name.
	Normalization string
	// Batch is the number of images per Encode call (default 128).
	Batch int
}

// Result is the outcome of a verification.
type Result struct {
	Images   int     `json:"images"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
	// TStat is the one-sample t statistic of the per-image correctness against 0.5 (+Inf when
	// every image is right; written as null in JSON then).
	TStat   float64 `json:"-"`
	PValue  float64 `json:"p_value"` // one-sided: P(T >= t) under "accuracy = 0.5"
	Alpha   float64 `json:"alpha"`
	Present bool    `json:"watermark_present"`
	Verdict string  `json:"verdict"`
	Seed    int64   `json:"seed"`
	// ImageSize is the input size the images were fed at (the encoder's).
	ImageSize int `json:"image_size"`
	// Note flags anything the reader should know (e.g. a size differing from the protocol's).
	Note string `json:"note,omitempty"`
}

// MarshalJSON writes the result with "t" as a number, or null when it is infinite.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	var t *float64
	if !math.IsInf(r.TStat, 0) && !math.IsNaN(r.TStat) {
		t = &r.TStat
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the verdict says "p < alpha"
	err := enc.Encode(struct {
		plain
		T *float64 `json:"t"`
	}{plain(r), t})
	return bytes.TrimRight(buf.Bytes(), "\n"), err
}

// WriteJSON writes the result, indented, to path (creating its directory).
func (r Result) WriteJSON(path string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// Verify tests whether the suspect encoder enc carries the watermark whose secret head is at
// secretPath (written by Head.Save), with the default VerifyConfig. See VerifyWith.
func Verify(ctx context.Context, enc infer.Encoder, secretPath string, ds data.Dataset, n int, seed int64) (Result, error) {
	return VerifyWith(ctx, enc, secretPath, ds, n, seed, VerifyConfig{})
}

// VerifyWith picks n held-out images of ds at random (seed), fits them to the encoder's input
// (infer.FitDataset), rotates each by a random angle (seed) with pixels in [0,1], applies the
// encoder's input normalisation, embeds them with enc, runs the secret head on the
// representations and compares its predictions with the rotation labels. The per-image
// correctness (0/1) is tested against 0.5 with a one-sided one-sample t-test; the watermark is
// declared present when p < alpha. The encoder's output dimension must equal the head's input
// dimension.
func VerifyWith(ctx context.Context, enc infer.Encoder, secretPath string, ds data.Dataset, n int, seed int64, cfg VerifyConfig) (Result, error) {
	if cfg.Alpha == 0 {
		cfg.Alpha = DefaultAlpha
	}
	if cfg.Normalization == "" {
		cfg.Normalization = "auto"
	}
	if cfg.Batch == 0 {
		cfg.Batch = 128
	}
	switch {
	case ctx == nil:
		return Result{}, errors.New("watermark: verify: nil context")
	case enc == nil:
		return Result{}, errors.New("watermark: verify: nil encoder")
	case ds == nil:
		return Result{}, errors.New("watermark: verify: nil dataset")
	case n < 2:
		return Result{}, fmt.Errorf("watermark: verify: %d images, need at least 2 for the t-test", n)
	case !(cfg.Alpha > 0 && cfg.Alpha < 1):
		return Result{}, fmt.Errorf("watermark: verify: alpha %v, expected 0 < alpha < 1", cfg.Alpha)
	case cfg.Batch < 1:
		return Result{}, fmt.Errorf("watermark: verify: batch %d, expected a positive number", cfg.Batch)
	}
	head, err := LoadHead(secretPath)
	if err != nil {
		return Result{}, err
	}
	defer head.Close()
	info := enc.Info()
	if info.OutputDim > 0 && info.OutputDim != head.Dim() {
		return Result{}, fmt.Errorf("watermark: verify: the encoder outputs %d-dimensional vectors (%q), the secret head takes %d: use the encoder's representation output of the same dimension as the watermarked victim's", info.OutputDim, info.OutputName, head.Dim())
	}
	rr, err := rotatedReps(ctx, enc, ds, n, seed, cfg.Normalization, cfg.Batch)
	if err != nil {
		return Result{}, fmt.Errorf("watermark: verify: %w", err)
	}
	if rr.dim != head.Dim() {
		return Result{}, fmt.Errorf("watermark: verify: the encoder outputs %d-dimensional vectors, the secret head takes %d", rr.dim, head.Dim())
	}
	res := Result{Images: n, Alpha: cfg.Alpha, Seed: seed, ImageSize: rr.size}
	if p := head.Protocol.ImageSize; p > 0 && p != rr.size {
		res.Note = fmt.Sprintf("the watermark was embedded at %dx%d, this encoder takes %dx%d (images resized to its size)", p, p, rr.size, rr.size)
	}
	pred, err := head.Predict(rr.reps, n)
	if err != nil {
		return Result{}, err
	}
	correct := make([]float64, n)
	for i, p := range pred {
		if p == rr.labels[i] {
			correct[i] = 1
			res.Correct++
		}
	}
	res.Accuracy = float64(res.Correct) / float64(n)
	if res.TStat, res.PValue, err = OneSampleTTest(correct, 0.5); err != nil {
		return Result{}, err
	}
	res.Present = res.PValue < cfg.Alpha
	res.Verdict = VerdictAbsent
	if res.Present {
		res.Verdict = VerdictPresent
	}
	return res, nil
}

// reps are an encoder's representations of rotated images and their rotation classes.
type reps struct {
	reps      []float32 // n x dim, row-major
	labels    []int64
	dim, size int // representation dimension; input height = width
}

// rotatedReps encodes n images of ds chosen by seed (fitted to the encoder's input, rotated by
// RotationBatch with angles drawn from seed, then normalised as choice says: "auto" follows the
// model's metadata) in batches of batch, and returns their representations and classes.
func rotatedReps(ctx context.Context, enc infer.Encoder, ds data.Dataset, n int, seed int64, choice string, batch int) (reps, error) {
	info := enc.Info()
	fit, err := infer.FitDataset(ds, info)
	if err != nil {
		return reps{}, err
	}
	if fit.Len() < n {
		return reps{}, fmt.Errorf("%d images requested, the dataset has %d", n, fit.Len())
	}
	norm, err := infer.Normalization(choice, info.Metadata)
	if err != nil {
		return reps{}, err
	}
	s := fit.Shape()
	if err := checkNorm(norm, s.C); err != nil {
		return reps{}, err
	}
	idx := data.Permutation(fit.Len(), seed)[:n]
	rng := rand.New(rand.NewSource(seed))
	out := reps{size: s.H}
	buf := make([]float32, batch*s.Size())
	for start := 0; start < n; start += batch {
		if err := ctx.Err(); err != nil {
			return reps{}, err
		}
		b := idx[start:min(start+batch, n)]
		x := buf[:len(b)*s.Size()]
		if err := data.Batch(fit, b, data.Normalization{}, x); err != nil {
			return reps{}, err
		}
		rot, labels, err := RotationBatch(rng, x, len(b), s.C, s.H, s.W)
		if err != nil {
			return reps{}, err
		}
		normalize(rot, len(b), s.C, s.H*s.W, norm)
		v, err := enc.Encode(ctx, infer.Images{N: len(b), C: s.C, H: s.H, W: s.W, Data: rot})
		if err != nil {
			return reps{}, fmt.Errorf("images %d-%d: %w", start, start+len(b)-1, err)
		}
		if v.N != len(b) || (out.dim != 0 && v.D != out.dim) {
			return reps{}, fmt.Errorf("the encoder returned %d vectors of %d values for %d images", v.N, v.D, len(b))
		}
		out.dim = v.D
		out.reps = append(out.reps, v.Data...)
		out.labels = append(out.labels, labels...)
	}
	return out, nil
}

// checkNorm validates a normalisation for c channels.
func checkNorm(norm data.Normalization, c int) error {
	if len(norm.Mean) != len(norm.Std) || (len(norm.Mean) > 1 && len(norm.Mean) != c) {
		return fmt.Errorf("watermark: normalization with %d means and %d stds for %d channels", len(norm.Mean), len(norm.Std), c)
	}
	for _, s := range norm.Std {
		if !(s > 0) {
			return fmt.Errorf("watermark: normalization std %v, expected > 0", s)
		}
	}
	return nil
}

// normalize applies (v - mean[c]) / std[c] in place to n images of c planes of plane pixels.
func normalize(x []float32, n, c, plane int, norm data.Normalization) {
	if len(norm.Mean) == 0 {
		return
	}
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			k := 0
			if len(norm.Mean) > 1 {
				k = ch
			}
			m, s := norm.Mean[k], norm.Std[k]
			p := x[(i*c+ch)*plane : (i*c+ch+1)*plane]
			for j := range p {
				p[j] = (p[j] - m) / s
			}
		}
	}
}

package watermark

import (
	"context"
	"encoding/json"
	"github.com/ssl-onnx/ssl-onnx/export"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/infer"
)

// verifyN is the number of held-out images per verification in the tests.
const verifyN = 400

func openORT(t *testing.T, path string) infer.Encoder {
	t.Helper()
	enc, err := infer.OpenORT(path, infer.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	return enc
}

func fmnistTest(t *testing.T) data.Dataset {
	t.Helper()
	ds, err := data.Open("fmnist", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestVerifyWatermarkedEncoder: the encoder trained with the head, exported to ONNX and run by
// ONNX Runtime, is recognised (accuracy well above 0.5, p small).
func TestVerifyWatermarkedEncoder(t *testing.T) {
	f := trained(t)
	enc := openORT(t, f.onnx)
	res, err := Verify(context.Background(), enc, f.secret, fmnistTest(t), verifyN, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("watermarked encoder: %d/%d correct, accuracy %.3f, t %.2f, p %.3g: %s", res.Correct, res.Images, res.Accuracy, res.TStat, res.PValue, res.Verdict)
	if res.Images != verifyN || res.ImageSize != fixSize || res.Alpha != DefaultAlpha || res.Note != "" {
		t.Errorf("result %+v: want %d images at %d px, alpha %g, no note", res, verifyN, fixSize, DefaultAlpha)
	}
	if math.Abs(res.Accuracy-float64(res.Correct)/float64(res.Images)) > 1e-12 {
		t.Errorf("accuracy %v is not correct/images = %d/%d", res.Accuracy, res.Correct, res.Images)
	}
	if res.Accuracy < 0.58 || !(res.PValue < 1e-3) || !res.Present || res.Verdict != VerdictPresent {
		t.Errorf("watermarked encoder: accuracy %.3f, p %.3g, verdict %q; want accuracy >= 0.58, p < 1e-3 and %q", res.Accuracy, res.PValue, res.Verdict, VerdictPresent)
	}
	// The t statistic is the one of the 0/1 correctness vector: t = (a-0.5)/sqrt(a(1-a)/(n-1)).
	a, n := res.Accuracy, float64(res.Images)
	if wantT := (a - 0.5) / math.Sqrt(a*(1-a)/(n-1)); math.Abs(res.TStat-wantT) > 1e-9*math.Abs(wantT) {
		t.Errorf("t = %v, want %v for accuracy %v over %v images", res.TStat, wantT, a, n)
	}
	// The same seed gives the same verdict on the same images.
	again, err := Verify(context.Background(), enc, f.secret, fmnistTest(t), verifyN, 1)
	if err != nil {
		t.Fatal(err)
	}
	if again.Correct != res.Correct || again.PValue != res.PValue {
		t.Errorf("same seed, different results: %d vs %d correct", again.Correct, res.Correct)
	}
	// JSON: t is a number, the verdict is there.
	path := filepath.Join(t.TempDir(), "out", "verify.json")
	if err := res.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if tv, ok := back["t"].(float64); !ok || tv != res.TStat || back["verdict"] != res.Verdict || back["p_value"] != res.PValue {
		t.Errorf("JSON %s does not carry t %v, p %v and the verdict", b, res.TStat, res.PValue)
	}
}

// TestVerifyIndependentEncoder: a randomly initialised encoder of the same architecture shows
// no evidence of the watermark.
func TestVerifyIndependentEncoder(t *testing.T) {
	f := trained(t)
	path := filepath.Join(t.TempDir(), "random.onnx")
	if err := export.RandomModel(path, fixSpec, 7); err != nil {
		t.Fatal(err)
	}
	enc := openORT(t, path)
	res, err := Verify(context.Background(), enc, f.secret, fmnistTest(t), verifyN, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("independent encoder: %d/%d correct, accuracy %.3f, t %.2f, p %.3g: %s", res.Correct, res.Images, res.Accuracy, res.TStat, res.PValue, res.Verdict)
	if !(res.PValue > 0.05) || res.Present || res.Verdict != VerdictAbsent {
		t.Errorf("independent encoder: accuracy %.3f, p %.3g, verdict %q; want p > 0.05 and %q", res.Accuracy, res.PValue, res.Verdict, VerdictAbsent)
	}
}

// TestVerifyBadInput checks the errors for a missing secret, a dimension mismatch and bad
// arguments.
func TestVerifyBadInput(t *testing.T) {
	f := trained(t)
	enc := openORT(t, f.onnx)
	ds := fmnistTest(t)
	ctx := context.Background()
	dir := t.TempDir()
	narrow, err := NewHead(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	narrowPath := filepath.Join(dir, "narrow.ot")
	if err := narrow.Save(narrowPath); err != nil {
		t.Fatal(err)
	}
	narrow.Close()
	small, err := data.First(ds, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		enc    infer.Encoder
		secret string
		ds     data.Dataset
		n      int
		cfg    VerifyConfig
		want   string
	}{
		{"missing secret", enc, filepath.Join(dir, "absent.ot"), ds, 100, VerifyConfig{}, "absent.ot"},
		{"dimension mismatch", enc, narrowPath, ds, 100, VerifyConfig{}, "the secret head takes 64"},
		{"more images than the dataset", enc, f.secret, small, 100, VerifyConfig{}, "the dataset has 10"},
		{"one image", enc, f.secret, ds, 1, VerifyConfig{}, "at least 2"},
		{"nil encoder", nil, f.secret, ds, 100, VerifyConfig{}, "nil encoder"},
		{"nil dataset", enc, f.secret, nil, 100, VerifyConfig{}, "nil dataset"},
		{"alpha 1", enc, f.secret, ds, 100, VerifyConfig{Alpha: 1}, "alpha"},
		{"negative batch", enc, f.secret, ds, 100, VerifyConfig{Batch: -1}, "batch"},
		{"unknown normalization", enc, f.secret, ds, 100, VerifyConfig{Normalization: "nope"}, "normalization"},
	} {
		_, err := VerifyWith(ctx, c.enc, c.secret, c.ds, c.n, 1, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Verify(cancelled, enc, f.secret, ds, 100, 1); err == nil {
		t.Error("cancelled context: no error")
	}
}

// TestResultJSONInfiniteT: an infinite t (every image right) is written as null.
func TestResultJSONInfiniteT(t *testing.T) {
	r := Result{Images: 3, Correct: 3, Accuracy: 1, TStat: math.Inf(1), PValue: 0, Alpha: 0.05, Present: true, Verdict: VerdictPresent}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if v, ok := back["t"]; !ok || v != nil || back["accuracy"] != 1.0 {
		t.Errorf("JSON %s: want \"t\": null and accuracy 1", b)
	}
}

// TestRefit: a head refitted on the watermarked encoder's representations of training images
// recognises the encoder on held-out test images, records the encoder's input size, and does
// not recognise an independent encoder.
func TestRefit(t *testing.T) {
	f := trained(t)
	enc := openORT(t, f.onnx)
	train, err := data.Open("fmnist", "", "train")
	if err != nil {
		t.Fatal(err)
	}
	h, acc, err := Refit(context.Background(), enc, train, 512, 20, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Protocol.ImageSize != fixSize || h.Dim() != enc.Info().OutputDim {
		t.Errorf("refitted head: image size %d, dim %d; want %d and %d", h.Protocol.ImageSize, h.Dim(), fixSize, enc.Info().OutputDim)
	}
	secret := filepath.Join(t.TempDir(), "refit.ot")
	if err := h.Save(secret); err != nil {
		t.Fatal(err)
	}
	res, err := Verify(context.Background(), enc, secret, fmnistTest(t), verifyN, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("refitted head: training accuracy %.3f; held out %.3f, p %.3g", acc, res.Accuracy, res.PValue)
	if res.Accuracy < 0.58 || !res.Present {
		t.Errorf("refitted head on its encoder: accuracy %.3f, p %.3g: want >= 0.58 and present", res.Accuracy, res.PValue)
	}
	path := filepath.Join(t.TempDir(), "random.onnx")
	if err := export.RandomModel(path, fixSpec, 7); err != nil {
		t.Fatal(err)
	}
	other, err := Verify(context.Background(), openORT(t, path), secret, fmnistTest(t), verifyN, 1)
	if err != nil {
		t.Fatal(err)
	}
	if other.Present {
		t.Errorf("refitted head recognises an independent encoder: accuracy %.3f, p %.3g", other.Accuracy, other.PValue)
	}
	if _, _, err := Refit(context.Background(), enc, train, 1, 1, 1); err == nil || !strings.Contains(err.Error(), "1 images") {
		t.Errorf("refit on one image: got %v", err)
	}
}

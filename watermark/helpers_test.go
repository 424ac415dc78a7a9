package watermark

import (
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/export"
	"github.com/ssl-onnx/ssl-onnx/internal/pyref"
	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
	"github.com/ssl-onnx/ssl-onnx/onnxpb"
)

// runRef runs testdata/<script> with the reference interpreter (see pyref.Run).
func runRef(t *testing.T, script string, out any, args ...string) {
	t.Helper()
	pyref.Run(t, script, out, args...)
}

// Sizes of the jointly trained fixture: small enough for two shared cores.
const (
	fixSize    = 32  // input height = width
	fixTrainN  = 128 // FMNIST training images
	fixBatch   = 64
	fixSteps   = 90
	fixLR      = 0.05 // SGD, momentum 0.9: on two shared cores our Adam's update costs as much as the backward pass
	fixHeldOut = 256  // FMNIST test images for the accuracy check
)

// fixSpec is the fixture's encoder: ResNet-18 with the ImageNet stem at 32x32 (512-d h).
var fixSpec = models.Spec{Arch: "resnet18", Stem: "imagenet", Head: "simclr", OutDim: 128, InputC: 3, InputHW: fixSize}

// fixture is an encoder trained jointly with a watermark head (rotation loss only), exported.
type fixture struct {
	dir       string  // temporary directory holding the files
	onnx      string  // the watermarked encoder (representation output)
	secret    string  // the head's .ot file (sidecar next to it)
	firstLoss float64 // mean watermark loss of the first 10 steps
	lastLoss  float64 // ... of the last 10
	chance    float64 // held-out rotation accuracy of the untrained encoder + head
	heldOut   float64 // held-out rotation accuracy after training
	seconds   float64 // training time
}

var fix struct {
	once sync.Once
	f    *fixture
	err  error
}

// trained returns the shared fixture, training it on first use.
func trained(t *testing.T) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the trained fixture: make test runs it")
	}
	fix.once.Do(func() { fix.f, fix.err = buildFixture() })
	if fix.err != nil {
		t.Fatal(fix.err)
	}
	return fix.f
}

// loadFloats opens split of FMNIST as first n 3 x size x size images in [0,1].
func loadFloats(split string, n int) ([]float32, error) {
	ds, err := data.Open("fmnist", "", split)
	if err != nil {
		return nil, err
	}
	if ds, err = data.First(ds, n); err != nil {
		return nil, err
	}
	if ds, err = data.Square3(ds, fixSize); err != nil {
		return nil, err
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	x := make([]float32, n*ds.Shape().Size())
	return x, data.Batch(ds, idx, data.Normalization{}, x)
}

// rotationAccuracy is the head's accuracy on the encoder's representations of the images
// rotated at random (seed).
func rotationAccuracy(m *torchnet.Net, h *Head, images []float32, n int, seed int64) (float64, error) {
	rot, labels, err := RotationBatch(rand.New(rand.NewSource(seed)), images, n, 3, fixSize, fixSize)
	if err != nil {
		return 0, err
	}
	reps, _, err := m.Embed(rot, n, m.Graph().Representation)
	if err != nil {
		return 0, err
	}
	pred, err := h.Predict(reps, n)
	if err != nil {
		return 0, err
	}
	ok := 0
	for i := range pred {
		if pred[i] == labels[i] {
			ok++
		}
	}
	return float64(ok) / float64(n), nil
}

func buildFixture() (f *fixture, err error) {
	dir, err := os.MkdirTemp("", "watermark-test-")
	if err != nil {
		return nil, err
	}
	f = &fixture{dir: dir, onnx: filepath.Join(dir, "victim.onnx"), secret: filepath.Join(dir, "wm.ot")}
	trainX, err := loadFloats("train", fixTrainN)
	if err != nil {
		return nil, err
	}
	testX, err := loadFloats("test", fixHeldOut)
	if err != nil {
		return nil, err
	}
	g, err := models.Build(fixSpec)
	if err != nil {
		return nil, err
	}
	// One libtorch thread: the cores are shared and OpenMP's spinning threads slow to a crawl
	// when oversubscribed.
	sess, err := torchnet.Open(torchnet.Options{Threads: 1, Seed: 1})
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	m, err := sess.NewNet(g, 1)
	if err != nil {
		return nil, err
	}
	head, err := NewHeadIn(sess, 512, 2)
	if err != nil {
		return nil, err
	}
	head.Protocol.ImageSize = fixSize
	head.Protocol.Normalization = "none"
	if f.chance, err = rotationAccuracy(m, head, testX, fixHeldOut, 99); err != nil {
		return nil, err
	}
	tr, err := m.NewTrainer(torchnet.TrainerConfig{Optimizer: "sgd", Momentum: 0.9, Watermark: head.MLP(), WatermarkWeight: 1})
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewSource(3))
	size := 3 * fixSize * fixSize
	batch := make([]float32, fixBatch*size)
	var losses []float64
	t0 := time.Now()
	for step := 0; step < fixSteps; step++ {
		for i, j := range rng.Perm(fixTrainN)[:fixBatch] {
			copy(batch[i*size:(i+1)*size], trainX[j*size:(j+1)*size])
		}
		rot, labels, err := RotationBatch(rng, batch, fixBatch, 3, fixSize, fixSize)
		if err != nil {
			return nil, err
		}
		l, err := tr.Step(torchnet.Batch{WatermarkRows: fixBatch, WatermarkX: rot, WatermarkLabels: labels}, fixLR)
		if err != nil {
			return nil, err
		}
		losses = append(losses, l)
	}
	f.seconds = time.Since(t0).Seconds()
	for i := 0; i < 10; i++ {
		f.firstLoss += losses[i] / 10
		f.lastLoss += losses[len(losses)-1-i] / 10
	}
	if f.heldOut, err = rotationAccuracy(m, head, testX, fixHeldOut, 99); err != nil {
		return nil, err
	}
	if err := head.Save(f.secret); err != nil {
		return nil, err
	}
	sd, err := m.StateDict()
	if err != nil {
		return nil, err
	}
	om, err := export.Model(g, sd, export.Options{})
	if err != nil {
		return nil, err
	}
	if err := onnxpb.WriteFile(f.onnx, om); err != nil {
		return nil, err
	}
	return f, nil
}

// TestMain removes the fixture's files.
func TestMain(m *testing.M) {
	code := m.Run()
	if fix.f != nil {
		os.RemoveAll(fix.f.dir)
	}
	os.Exit(code)
}

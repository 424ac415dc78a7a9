package infer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// cudaProviderLibs are the files ONNX Runtime loads, from beside
// libonnxruntime.so, to run on CUDA.
var cudaProviderLibs = []string{"libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"}

// ortEnv is the process-wide ONNX Runtime environment.
var ortEnv struct {
	once sync.Once
	lib  string
	err  error
}

// initORT loads the library at lib once per process. Later calls get the
// first call's error, or an error if they ask for a different library.
func initORT(lib string) error {
	ortEnv.once.Do(func() {
		ortEnv.lib = lib
		if ort.IsInitialized() {
			return // another package of this process loaded it; use that
		}
		ort.SetSharedLibraryPath(lib)
		ortEnv.err = ort.InitializeEnvironment(ort.WithLogLevelError())
	})
	if ortEnv.err != nil {
		return fmt.Errorf("infer: cannot load ONNX Runtime from %s: %w", ortEnv.lib, ortEnv.err)
	}
	if lib != ortEnv.lib {
		a, errA := os.Stat(lib)
		b, errB := os.Stat(ortEnv.lib)
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			return fmt.Errorf("infer: ONNX Runtime is already loaded from %s in this process; cannot also load %s (one library per process)",
				ortEnv.lib, lib)
		}
	}
	return nil
}

// parseDevice splits "cpu", "cuda" or "cuda:N" into kind and GPU index.
func parseDevice(dev string) (cuda bool, id int, err error) {
	switch {
	case dev == "" || dev == "cpu":
		return false, 0, nil
	case dev == "cuda":
		return true, 0, nil
	case strings.HasPrefix(dev, "cuda:"):
		id, err := strconv.Atoi(dev[len("cuda:"):])
		if err == nil && id >= 0 {
			return true, id, nil
		}
	}
	return false, 0, fmt.Errorf("infer: unknown device %q; expected \"cpu\", \"cuda\" or \"cuda:N\"", dev)
}

// checkCUDAProviders reports the first CUDA provider library missing beside lib.
func checkCUDAProviders(lib string) error {
	dir := filepath.Dir(lib)
	for _, name := range cudaProviderLibs {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("infer: device cuda: ONNX Runtime CUDA provider library %s not found in %s (looked for %s, beside %s); "+
				"the CPU build installed by scripts/setup.sh has no CUDA support - put the onnxruntime-gpu %s libraries "+
				"(libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so) there, or use device \"cpu\"",
				name, dir, p, filepath.Base(lib), ort.GetVersion())
		}
	}
	return nil
}

// ortEncoder runs a model with an ONNX Runtime DynamicAdvancedSession.
type ortEncoder struct {
	mu   sync.RWMutex // Encode holds it shared, Close exclusively
	sess *ort.DynamicAdvancedSession
	info Info
	path string
}

// OpenORT loads the ONNX model at path into ONNX Runtime. The returned
// Encoder is goroutine-safe: concurrent Encode calls run in parallel on one
// session. The model must have exactly one float32 input of rank 4 (NCHW)
// and a float32 output of shape [N, D] or [N, D, 1, 1].
func OpenORT(path string, opt Options) (Encoder, error) {
	cuda, gpu, err := parseDevice(opt.Device)
	if err != nil {
		return nil, err
	}
	if opt.Threads < 0 {
		return nil, fmt.Errorf("infer: Options.Threads must be >= 0 (0 = number of cores), found %d", opt.Threads)
	}
	if err := checkModelFile(path); err != nil {
		return nil, err
	}
	lib, err := LibraryPath(opt.Library)
	if err != nil {
		return nil, err
	}
	if cuda {
		if err := checkCUDAProviders(lib); err != nil {
			return nil, err
		}
	}
	if err := initORT(lib); err != nil {
		return nil, err
	}

	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("infer: ONNX Runtime cannot load model %s: %w", path, err)
	}
	var info Info
	if len(ins) != 1 {
		return nil, fmt.Errorf("infer: model %s has %d inputs %v; expected exactly 1 (NCHW images)", path, len(ins), ioNames(ins))
	}
	if err := checkFloatTensor(ins[0], "input"); err != nil {
		return nil, fmt.Errorf("%w (model %s)", err, path)
	}
	if err := inputInfo(ins[0].Name, ins[0].Dimensions, &info); err != nil {
		return nil, fmt.Errorf("%w (model %s)", err, path)
	}
	out, err := pickOutput(outs, opt.Output)
	if err != nil {
		return nil, fmt.Errorf("%w (model %s)", err, path)
	}
	if err := checkFloatTensor(out, "output"); err != nil {
		return nil, fmt.Errorf("%w (model %s)", err, path)
	}
	if err := outputInfo(out.Name, out.Dimensions, &info); err != nil {
		return nil, fmt.Errorf("%w (model %s)", err, path)
	}

	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("infer: session options: %w", err)
	}
	defer so.Destroy()
	threads := opt.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		return nil, fmt.Errorf("infer: set %d intra-op threads: %w", threads, err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("infer: set inter-op threads: %w", err)
	}
	if opt.NoSpin {
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return nil, fmt.Errorf("infer: disable spinning: %w", err)
		}
	}
	if cuda {
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("infer: device %s: CUDA provider options: %w", opt.Device, err)
		}
		defer co.Destroy()
		if err := co.Update(map[string]string{"device_id": strconv.Itoa(gpu)}); err != nil {
			return nil, fmt.Errorf("infer: device %s: %w", opt.Device, err)
		}
		if err := so.AppendExecutionProviderCUDA(co); err != nil {
			return nil, fmt.Errorf("infer: device %s: ONNX Runtime cannot enable CUDA: %w", opt.Device, err)
		}
	}
	sess, err := ort.NewDynamicAdvancedSession(path, []string{info.InputName}, []string{info.OutputName}, so)
	if err != nil {
		return nil, fmt.Errorf("infer: ONNX Runtime cannot create a session for %s: %w", path, err)
	}
	info.Metadata, err = sessionMetadata(sess)
	if err != nil {
		sess.Destroy()
		return nil, fmt.Errorf("infer: model %s metadata: %w", path, err)
	}
	return &ortEncoder{sess: sess, info: info, path: path}, nil
}

// checkModelFile gives a plain error for a model path that is not a readable file.
func checkModelFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("infer: model file: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("infer: model file %s is a directory, expected an .onnx file", path)
	}
	return nil
}

func ioNames(infos []ort.InputOutputInfo) []string {
	names := make([]string, len(infos))
	for i, in := range infos {
		names[i] = in.Name
	}
	return names
}

func checkFloatTensor(in ort.InputOutputInfo, what string) error {
	if in.OrtValueType != ort.ONNXTypeTensor {
		return fmt.Errorf("infer: model %s %q is a %s, expected a float32 tensor", what, in.Name, in.OrtValueType)
	}
	if in.DataType != ort.TensorElementDataTypeFloat {
		return fmt.Errorf("infer: model %s %q has element type %s, expected float32", what, in.Name, in.DataType)
	}
	return nil
}

// pickOutput returns the output called name, or the first one if name is "".
func pickOutput(outs []ort.InputOutputInfo, name string) (ort.InputOutputInfo, error) {
	if len(outs) == 0 {
		return ort.InputOutputInfo{}, errors.New("infer: model has no outputs")
	}
	if name == "" {
		return outs[0], nil
	}
	for _, o := range outs {
		if o.Name == name {
			return o, nil
		}
	}
	return ort.InputOutputInfo{}, fmt.Errorf("infer: model has no output %q; its outputs are %q", name, ioNames(outs))
}

func sessionMetadata(sess *ort.DynamicAdvancedSession) (map[string]string, error) {
	md, err := sess.GetModelMetadata()
	if err != nil {
		return nil, err
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return nil, err
	}
	sort.Strings(keys)
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		v, ok, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			return nil, err
		}
		if ok {
			m[k] = v
		}
	}
	return m, nil
}

// Encode runs the model on x; see the package documentation for chunking.
func (e *ortEncoder) Encode(ctx context.Context, x Images) (Vectors, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.sess == nil {
		return Vectors{}, fmt.Errorf("infer: encoder for %s is closed", e.path)
	}
	if err := checkInput(x, e.info); err != nil {
		return Vectors{}, err
	}
	return encodeChunks(ctx, x, e.info, MaxChunk, e.run)
}

func (e *ortEncoder) run(data []float32, inShape []int64) ([]float32, []int64, error) {
	shape := ort.NewShape(inShape...)
	in, err := ort.NewTensor(shape, data)
	if err != nil {
		return nil, nil, fmt.Errorf("ONNX Runtime input tensor %v: %w", shape, err)
	}
	defer in.Destroy()
	outs := []ort.Value{nil}
	if err := e.sess.Run([]ort.Value{in}, outs); err != nil {
		return nil, nil, fmt.Errorf("ONNX Runtime: %w", err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, nil, fmt.Errorf("output %q is %T, expected a float32 tensor", e.info.OutputName, outs[0])
	}
	return t.GetData(), t.GetShape(), nil
}

// Info returns a copy of the model's description.
func (e *ortEncoder) Info() Info { return cloneInfo(e.info) }

// Close destroys the session. It waits for running Encode calls; a second
// Close is a no-op.
func (e *ortEncoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sess == nil {
		return nil
	}
	err := e.sess.Destroy()
	e.sess = nil
	if err != nil {
		return fmt.Errorf("infer: close %s: %w", e.path, err)
	}
	return nil
}

package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ssl-onnx/ssl-onnx/models"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

// Checkpoint is the JSON sidecar of a saved encoder: what it is, how it was trained, and which
// weight and optimiser files belong to it.
type Checkpoint struct {
	Config  Config      `json:"config"`
	Spec    models.Spec `json:"spec"`
	Epoch   int         `json:"epoch"` // epochs finished
	Step    int64       `json:"step"`  // optimiser updates done
	Loss    float64     `json:"loss"`  // mean loss of the last epoch
	Weights string      `json:"weights"`
	OptimST string      `json:"optimizer_state"`
}

// SidecarName is the checkpoint's JSON file inside a run directory.
const SidecarName = "checkpoint.json"

// LogPath is the run's JSON-lines training log.
func LogPath(dir string) string { return filepath.Join(dir, "train.log.jsonl") }

// SaveCheckpoint writes weights, optimiser state and the sidecar atomically: the new files get
// epoch-stamped names, the sidecar is renamed into place last, then older files are removed.
// A crash at any point leaves either the previous complete checkpoint or the new one.
func SaveCheckpoint(dir string, ck Checkpoint, net *torchnet.Net, tr *torchnet.Trainer) error {
	ck.Weights = fmt.Sprintf("model-e%04d.ot", ck.Epoch)
	ck.OptimST = fmt.Sprintf("optim-e%04d.ot", ck.Epoch)
	if err := net.Save(filepath.Join(dir, ck.Weights+".tmp")); err != nil {
		return err
	}
	if err := tr.SaveState(filepath.Join(dir, ck.OptimST+".tmp")); err != nil {
		return err
	}
	for _, f := range []string{ck.Weights, ck.OptimST} {
		if err := syncFile(filepath.Join(dir, f+".tmp")); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(dir, f+".tmp"), filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	js, err := json.MarshalIndent(ck, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, SidecarName), js); err != nil {
		return err
	}
	// The renames must be durable before the files they replace are deleted: after a crash
	// the directory could otherwise still name the old sidecar while its weights are gone.
	if err := SyncDir(dir); err != nil {
		return err
	}
	// Older epochs' files are no longer referenced.
	old, _ := filepath.Glob(filepath.Join(dir, "*-e[0-9][0-9][0-9][0-9].ot"))
	for _, f := range old {
		b := filepath.Base(f)
		if b != ck.Weights && b != ck.OptimST {
			os.Remove(f)
		}
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// SyncDir makes the directory's entries (renames, new files) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// WriteFileAtomic writes b to path through a synced temporary file and a rename, then syncs
// the directory: a crash leaves the old content or the new, never a part.
func WriteFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// LoadCheckpoint reads dir's sidecar; it returns nil, nil when dir has no checkpoint yet.
// dir may also name the sidecar file itself.
func LoadCheckpoint(dir string) (*Checkpoint, error) {
	path := dir
	if !strings.HasSuffix(path, ".json") {
		path = filepath.Join(dir, SidecarName)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ck Checkpoint
	if err := json.Unmarshal(b, &ck); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if err := ck.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("checkpoint %s: spec: %w", path, err)
	}
	if ck.Weights == "" {
		return nil, fmt.Errorf("checkpoint %s: field weights is empty", path)
	}
	if ck.Config.Views == 0 { // written before --views existed: every run trained two views
		ck.Config.Views = 2
	}
	return &ck, nil
}

// Compatible says whether a run configured as c can resume from ck: the same data, model
// and recipe. Only the number of epochs may change (the schedule is recomputed for the new
// total), and the machine's settings (threads, device, workers). A different recipe from
// these weights is --init-from's job (fresh optimiser and schedule).
func (ck *Checkpoint) Compatible(c Config) error {
	p := ck.Config
	type field struct {
		name      string
		was, want any
	}
	var diff []string
	for _, f := range []field{
		{"dataset", p.Dataset, c.Dataset}, {"split", p.Split, c.Split}, {"limit", p.Limit, c.Limit},
		{"arch", p.Arch, c.Arch}, {"stem", p.Stem, c.Stem}, {"out-dim", p.OutDim, c.OutDim}, {"size", p.Size, c.Size},
		{"loss", p.Loss, c.Loss}, {"temperature", p.Temperature, c.Temperature}, {"optimizer", p.Optimizer, c.Optimizer},
		{"lr", p.LR, c.LR}, {"weight-decay", p.WeightDecay, c.WeightDecay}, {"momentum", p.Momentum, c.Momentum},
		{"warmup", p.Warmup, c.Warmup}, {"batch-size", p.BatchSize, c.BatchSize}, {"crop-min", p.CropMin, c.CropMin}, {"views", p.Views, c.Views},
		{"watermark", p.Watermark, c.Watermark}, {"watermark-weight", p.WatermarkWeight, c.WatermarkWeight},
		{"watermark-batch", p.WatermarkBatch, c.WatermarkBatch}, {"seed", p.Seed, c.Seed},
	} {
		if f.was != f.want {
			diff = append(diff, fmt.Sprintf("--%s %v (checkpoint: %v)", f.name, f.want, f.was))
		}
	}
	if len(diff) > 0 {
		return fmt.Errorf("resume: the run asks for %s; only --epochs may change when resuming (start a new run directory with --init-from %s to continue these weights with another recipe)",
			strings.Join(diff, ", "), c.Dir)
	}
	return nil
}

// Restore loads the checkpoint's weights (and optimiser state when tr is not nil).
func (ck *Checkpoint) Restore(dir string, net *torchnet.Net, tr *torchnet.Trainer) error {
	if strings.HasSuffix(dir, ".json") {
		dir = filepath.Dir(dir)
	}
	if err := net.Load(filepath.Join(dir, ck.Weights)); err != nil {
		return err
	}
	if tr == nil {
		return nil
	}
	return tr.LoadState(filepath.Join(dir, ck.OptimST), ck.Step)
}

// LoadModel builds the checkpoint's net in sess and loads its weights.
func LoadModel(sess *torchnet.Session, dir string) (*Checkpoint, *torchnet.Net, error) {
	ck, err := LoadCheckpoint(dir)
	if err != nil {
		return nil, nil, err
	}
	if ck == nil {
		return nil, nil, fmt.Errorf("%s: no %s (train a model first)", dir, SidecarName)
	}
	g, err := models.Build(ck.Spec)
	if err != nil {
		return nil, nil, err
	}
	net, err := sess.NewNet(g, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := ck.Restore(dir, net, nil); err != nil {
		net.Close()
		return nil, nil, err
	}
	return ck, net, nil
}

// DefaultOutput is the output an export of this checkpoint should give by default: the
// representation (a supervised victim's pooled features too, not its class scores), except for
// a stolen encoder with a linear head, whose projection is what
// matches the victim's answers.
func (ck *Checkpoint) DefaultOutput() string {
	if ck.Spec.Head == "linear" && !IsSupervised(ck.Config.Loss) {
		return models.OutputProjection
	}
	return models.OutputRepresentation
}

package study

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/watermark"
)

// EvalResult is the evaluation of the victim and its random-init baseline, against which the
// stolen copies are read.
type EvalResult struct {
	VictimProbe float64 `json:"victim_probe_top1"`
	VictimKNN   float64 `json:"victim_knn_top1"`
	RandomProbe float64 `json:"random_probe_top1"`
	TrainN      int     `json:"train_n"`
	TestN       int     `json:"test_n"`
	// VictimWatermark is the owner's check of the victim itself (nil without a secret).
	VictimWatermark *WatermarkCheck `json:"victim_watermark,omitempty"`
	Report          *eval.Report    `json:"report"`
}

// evaluate evaluates every stolen copy against the undefended victim (probe, kNN, fidelity,
// advantage recovered over random init) and checks each for the owner's watermark.
func evaluate(ctx context.Context, c Config, victim, secret string, stages []*Stage, log io.Writer) (EvalResult, error) {
	var models []string
	for _, st := range stages {
		for _, a := range st.Attackers {
			models = append(models, a.Model)
		}
	}
	rep, err := evalReport(ctx, c, victim, models, log)
	if err != nil {
		return EvalResult{}, err
	}
	er := EvalResult{TrainN: rep.TrainN, TestN: rep.TestN, Report: rep}
	rows := map[string]eval.Row{}
	victimDim := 0
	for _, r := range rep.Rows {
		switch {
		case r.Kind == eval.KindReference:
			er.VictimProbe, er.VictimKNN, victimDim = r.ProbeTop1, r.KNNTop1, r.Dim
		case r.Kind == eval.KindBaseline:
			er.RandomProbe = r.ProbeTop1
		default:
			rows[r.Model] = r
		}
	}
	var test data.Dataset
	if secret != "" {
		if test, err = data.Open("fmnist", "", "test"); err != nil {
			return er, err
		}
		if er.VictimWatermark, err = checkWatermark(ctx, c, victim, secret, test); err != nil {
			return er, err
		}
	}
	for _, st := range stages {
		for i := range st.Attackers {
			a := &st.Attackers[i]
			r, ok := rows[a.Model]
			if !ok {
				return er, fmt.Errorf("evaluation has no row for %s", a.Model)
			}
			a.Probe, a.KNN, a.Fidelity, a.ProbeCI, a.right = r.ProbeTop1, r.KNNTop1, r.FidelityCos, r.ProbeCI, eval.ParseRight(r.ProbeRight)
			if gap := er.VictimProbe - er.RandomProbe; gap > 0 {
				adv := (r.ProbeTop1 - er.RandomProbe) / gap
				a.Advantage = &adv
			}
			// The owner's head reads the victim's representation: a copy of another dimension
			// (stolen through truncate) cannot be checked with it.
			if secret != "" && r.Dim == victimDim {
				if a.Watermark, err = checkWatermark(ctx, c, a.Model, secret, test); err != nil {
					return er, err
				}
			}
		}
	}
	return er, nil
}

// evalReport evaluates the victim, the models and a random-init baseline, reusing eval.json
// when it covers every model.
func evalReport(ctx context.Context, c Config, victim string, models []string, log io.Writer) (*eval.Report, error) {
	path := filepath.Join(c.Dir, "eval.json")
	if rep := eval.LoadReport(path, append([]string{victim}, models...)); rep != nil && rep.Reference == victim {
		fmt.Fprintf(log, "%s covers every stolen copy: skipping\n", path)
		return rep, nil
	}
	cfg := eval.DefaultConfig()
	cfg.Reference, cfg.Models = victim, models
	cfg.Baselines = []string{eval.BaselineRandom}
	cfg.TrainLimit, cfg.TestLimit = c.EvalTrain, c.EvalTest
	cfg.Probe.Epochs = c.ProbeEpochs
	cfg.Threads, cfg.Device, cfg.TempDir = c.Threads, c.Device, c.Dir
	rep, err := eval.Evaluate(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return rep, rep.WriteJSON(path)
}

func checkWatermark(ctx context.Context, c Config, model, secret string, test data.Dataset) (*WatermarkCheck, error) {
	enc, err := infer.OpenORT(model, infer.Options{Threads: c.Threads, Device: c.Device})
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	r, err := watermark.Verify(ctx, enc, secret, test, c.WatermarkImages, 1)
	if err != nil {
		return nil, fmt.Errorf("watermark check of %s: %w", model, err)
	}
	return &WatermarkCheck{Accuracy: r.Accuracy, PValue: r.PValue, Present: r.Present}, nil
}

// summarise fills the users' drops against the undefended stage (with their paired tests),
// each stage's means, and each copy's paired test against its undefended twin.
func summarise(res *Results) {
	var base *Stage
	for _, st := range res.Stages {
		if st.Defense == None {
			base = st
		}
	}
	for _, st := range res.Stages {
		lo, hi, sum, drop := math.Inf(1), math.Inf(-1), 0.0, 0.0
		for i := range st.Users {
			u := &st.Users[i]
			if base != nil && i < len(base.Users) {
				u.Drop = 100 * (base.Users[i].Top1 - u.Top1)
				if st != base {
					u.DropP = paired(base.Users[i].Right, u.Right)
				}
			}
			sum += u.Top1
			drop += u.Drop
			lo, hi = math.Min(lo, u.Top1), math.Max(hi, u.Top1)
		}
		n := float64(len(st.Users))
		st.UserTop1Mean, st.UserTop1Spread, st.UserDrop = sum/n, hi-lo, drop/n
		for i := range st.Attackers {
			if base != nil && st != base && i < len(base.Attackers) {
				st.Attackers[i].ProbeP = paired(base.Attackers[i].right, st.Attackers[i].right)
			}
		}
	}
}

// paired is the McNemar p-value of two outcome lists of the same test images (nil when they
// are not comparable).
func paired(a, b []bool) *float64 {
	p, err := eval.McNemar(a, b)
	if err != nil {
		return nil
	}
	return &p
}

package study

import (
	"context"
	"fmt"
	"sort"

	"github.com/ssl-onnx/ssl-onnx/attack"
	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/eval"
	"github.com/ssl-onnx/ssl-onnx/infer"
)

// UserResult is what one legitimate user got from a defended API.
type UserResult struct {
	Name      string `json:"name"`
	Catalogue bool   `json:"catalogue"` // sorted by class, every image twice (a detector's hard case)
	Sent      int    `json:"images_sent"`
	Answered  int    `json:"images_answered"`
	Refused   string `json:"refused,omitempty"` // the API's refusal that stopped this user
	// Top1 is the user's probe accuracy over all TestImages: trained on the train answers it
	// got, scored on the test answers it got; a test image left unanswered counts as an error.
	Top1    float64 `json:"probe_top1"`
	Correct int     `json:"correct"`
	Tested  int     `json:"tested"`
	// CI is Top1's 95% Wilson interval over the test images.
	CI eval.Interval `json:"probe_top1_ci95"`
	// Drop is the undefended API's Top1 for this user minus this one, in points, and DropP the
	// exact McNemar p-value of that difference on the same test images (filled in by summarise).
	Drop  float64  `json:"drop_points"`
	DropP *float64 `json:"drop_p,omitempty"`
	// Right marks the test images this user's probe got right (for paired comparisons).
	Right []bool `json:"-"`
}

// userPlan is what one user sends: train items then the shared test items.
type userPlan struct {
	name      string
	catalogue bool
	train     []item
	test      []item
}

// item is one image a user sends: index i of its split, optionally brightened by 2% (a
// catalogue's near-duplicate).
type item struct {
	i      int
	bright bool
}

// users holds the fitted splits and every user's plan.
type users struct {
	train, test data.Dataset
	norm        data.Normalization
	plans       []userPlan
	classes     int
}

// openUsers prepares the users' images, fitted to the victim's input.
func openUsers(c Config, info infer.Info) (*users, error) {
	open := func(split string, n int) (data.Dataset, error) {
		ds, err := data.Open("fmnist", "", split)
		if err != nil {
			return nil, err
		}
		if ds, err = data.First(ds, n); err != nil {
			return nil, err
		}
		return infer.FitDataset(ds, info)
	}
	tr, err := open("train", c.Users*c.UserImages)
	if err != nil {
		return nil, err
	}
	te, err := open("test", c.TestImages)
	if err != nil {
		return nil, err
	}
	norm, err := infer.Normalization("auto", info.Metadata)
	if err != nil {
		return nil, err
	}
	u := &users{train: tr, test: te, norm: norm, classes: len(tr.Classes())}
	var test []item
	for i := 0; i < c.TestImages; i++ {
		test = append(test, item{i: i})
	}
	for k := 0; k < c.Users; k++ {
		p := userPlan{name: fmt.Sprintf("user%d", k+1), test: test}
		for i := k * c.UserImages; i < (k+1)*c.UserImages; i++ {
			p.train = append(p.train, item{i: i})
		}
		if k == c.Users-1 && c.Users > 1 {
			p.name, p.catalogue = "catalogue", true
			sort.SliceStable(p.train, func(a, b int) bool { return tr.Label(p.train[a].i) < tr.Label(p.train[b].i) })
			var dup []item
			for _, it := range p.train {
				dup = append(dup, it, item{i: it.i, bright: true})
			}
			p.train = dup
		}
		u.plans = append(u.plans, p)
	}
	return u, nil
}

// embed sends items of ds through enc in requests of batch images and returns the answered
// prefix's vectors; a refusal (HTTP 4xx) ends it early and is returned as refused.
func (u *users) embed(ctx context.Context, enc infer.Encoder, ds data.Dataset, items []item, batch int) (v infer.Vectors, refused string, err error) {
	s := ds.Shape()
	per := s.Size()
	buf := make([]float32, batch*per)
	for lo := 0; lo < len(items); lo += batch {
		hi := min(lo+batch, len(items))
		for j, it := range items[lo:hi] {
			dst := buf[j*per : (j+1)*per]
			if err := data.ToFloat(ds, it.i, u.norm, dst); err != nil {
				return v, "", err
			}
			if it.bright {
				for k := range dst {
					dst[k] = min(dst[k]*1.02, 1)
				}
			}
		}
		out, err := enc.Encode(ctx, infer.Images{N: hi - lo, C: s.C, H: s.H, W: s.W, Data: buf[:(hi-lo)*per]})
		if attack.IsRefusal(err) {
			return v, err.Error(), nil
		}
		if err != nil {
			return v, "", err
		}
		v.N, v.D = v.N+out.N, out.D
		v.Data = append(v.Data, out.Data...)
	}
	return v, "", nil
}

// run lets user p embed its images through enc and probes what it got.
func (u *users) run(ctx context.Context, c Config, p userPlan, enc infer.Encoder) (UserResult, error) {
	r := UserResult{Name: p.name, Catalogue: p.catalogue, Sent: len(p.train) + len(p.test), Tested: len(p.test)}
	trv, refused, err := u.embed(ctx, enc, u.train, p.train, 64)
	if err != nil {
		return r, err
	}
	tev := infer.Vectors{D: trv.D}
	if refused == "" {
		if tev, refused, err = u.embed(ctx, enc, u.test, p.test, 64); err != nil {
			return r, err
		}
	}
	r.Refused, r.Answered = refused, trv.N+tev.N
	r.Right = make([]bool, len(p.test))
	r.CI = eval.Wilson(0, r.Tested)
	if trv.N < 2 || tev.N == 0 {
		return r, nil // nothing to train on or to score: every test image is an error
	}
	ytr := make([]int, trv.N)
	for j := range ytr {
		ytr[j] = u.train.Label(p.train[j].i)
	}
	yte := make([]int, tev.N)
	for j := range yte {
		yte[j] = u.test.Label(p.test[j].i)
	}
	pc := eval.DefaultProbeConfig()
	pc.Epochs = c.ProbeEpochs
	pr, err := eval.LinearProbe(eval.Features{X: trv, Y: ytr, Classes: u.classes}, eval.Features{X: tev, Y: yte, Classes: u.classes}, pc)
	if err != nil {
		return r, fmt.Errorf("%s's probe: %w", p.name, err)
	}
	for j, y := range yte {
		if pr.Pred[j] == y {
			r.Right[j] = true
			r.Correct++
		}
	}
	r.Top1 = float64(r.Correct) / float64(r.Tested)
	r.CI = eval.Wilson(r.Correct, r.Tested)
	return r, nil
}

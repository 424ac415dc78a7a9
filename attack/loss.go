package attack

import (
	"fmt"
	"slices"
)

// LossSpec is an extraction loss with the reference's defaults. The computation is
// torchnet's, named by Compute: it compares the stolen encoder's outputs with the victim's
// answers for the same images (for two-view losses, view 1 in the first half of the rows and
// view 2 of the same images in the second).
type LossSpec struct {
	Compute     string // the torchnet loss
	Views       int    // victim answers paid per query image: 1, or 2 for two-view losses
	Temperature float64
	BatchSize   int
	Optimizer   string
	LR          float64
	NeedsLabels bool
	// SimSiam steals through the reference's SimSiam stealing model (see
	// torchnet.TrainerConfig.SimSiam).
	SimSiam bool
	// StolenHead: the stolen encoder always trains through an MLP head of its own (see
	// Config.StolenHead).
	StolenHead bool
}

// lossSpecs are the extraction losses (one line each), with the per-loss batch size,
// optimiser and learning rate of the reference code.
func lossSpecs() map[string]LossSpec {
	return map[string]LossSpec{
		"mse":         {Compute: "mse", Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
		"infonce":     {Compute: "infonce", Views: 1, Temperature: 0.07, BatchSize: 256, Optimizer: "adam", LR: 3e-4},
		"softnn":      {Compute: "softnn", Views: 1, Temperature: 100, BatchSize: 256, Optimizer: "adam", LR: 1e-3},
		"wasserstein": {Compute: "wasserstein", Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
		"barlow":      {Compute: "barlow", Views: 2, BatchSize: 256, Optimizer: "adam", LR: 1e-3},
		"supcon":      {Compute: "supcon", Views: 2, Temperature: 0.07, BatchSize: 256, Optimizer: "sgd", LR: 0.05, NeedsLabels: true},
		"symmetrized": {Compute: "symmetrized", Views: 2, BatchSize: 256, Optimizer: "sgd", LR: 0.05, SimSiam: true},
		"cosine":      {Compute: "cosine", Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
		"bce":         {Compute: "bce", Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
		// The reference's msewithhead (its --victimhead): MSE against the victim's own projection
		// (an API that answers projections: `export --layer projection`) through a head of the
		// stolen encoder's own.
		"msewithhead": {Compute: "mse", Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3, StolenHead: true},
		// The label-stealing baseline (Knockoff-style): the victim is a classifier (see
		// `ssl-onnx classifier`) and answers class scores.
		"labels": {Compute: "labels", Views: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
		"logits": {Compute: "logits", Views: 1, Temperature: 1, BatchSize: 64, Optimizer: "adam", LR: 1e-3},
	}
}

// LossNames lists the extraction losses, sorted.
func LossNames() []string {
	var n []string
	for k := range lossSpecs() {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

// LookupLoss returns the named loss or an error listing the valid ones.
func LookupLoss(name string) (LossSpec, error) {
	l, ok := lossSpecs()[name]
	if !ok {
		return LossSpec{}, fmt.Errorf("loss %q: expected one of %v", name, LossNames())
	}
	return l, nil
}

package train

import (
	"fmt"
	"slices"
)

// lossSpec is a victim-training loss with its reference defaults. The computation is
// torchnet's, by name.
type lossSpec struct {
	Temperature float64
	NeedsLabels bool
	// Supervised losses read class scores: the model gets a linear classifier head with one
	// output per class instead of the SimCLR projection head, and lighter augmentations.
	Supervised bool
}

// lossSpecs are the victim-training losses, by name (one line each).
func lossSpecs() map[string]lossSpec {
	return map[string]lossSpec{
		"infonce": {Temperature: 0.07},
		"softnn":  {Temperature: 100},
		"supcon":  {Temperature: 0.07, NeedsLabels: true},
		"ce":      {Temperature: 1, NeedsLabels: true, Supervised: true},
	}
}

// LossNames lists the victim-training losses, sorted.
func LossNames() []string {
	var names []string
	for k := range lossSpecs() {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// lookupLoss returns the named loss or an error listing the valid names.
func lookupLoss(name string) (lossSpec, error) {
	l, ok := lossSpecs()[name]
	if !ok {
		return lossSpec{}, fmt.Errorf("loss %q: expected one of %v", name, LossNames())
	}
	return l, nil
}

// IsSupervised says whether the named loss trains a classifier.
func IsSupervised(loss string) bool { return lossSpecs()[loss].Supervised }

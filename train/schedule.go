package train

import "math"

// CosineLR is the learning rate at (0-based) epoch: linear warm-up over warmup epochs, then
// cosine annealing from base to 0 over the remaining epochs.
func CosineLR(base float64, epoch, warmup, epochs int) float64 {
	if epoch < warmup {
		return base * float64(epoch+1) / float64(warmup)
	}
	span := epochs - warmup
	if span <= 0 {
		return base
	}
	return base * 0.5 * (1 + math.Cos(math.Pi*float64(epoch-warmup)/float64(span)))
}

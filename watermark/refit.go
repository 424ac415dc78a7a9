package watermark

import (
	"context"
	"fmt"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
)

// Refit re-keys the owner's secret for the encoder as it is served. The head trained jointly
// with the encoder reads the representations of images at the training size; an encoder
// exported at another input size (see `ssl-onnx export --size`) represents images differently,
// and the old head no longer reads them. Refit trains a new head of the same protocol on the
// served encoder's representations of n rotated images of ds - the owner's own data: use a
// split that verification does not draw from - for epochs passes of Adam (lr 1e-3, batches of
// 128), seeded by seed. It returns the head (ImageSize set to the encoder's input) and its
// accuracy on those images.
func Refit(ctx context.Context, enc infer.Encoder, ds data.Dataset, n, epochs int, seed int64) (h *Head, acc float64, err error) {
	switch {
	case enc == nil || ds == nil:
		return nil, 0, fmt.Errorf("watermark: refit: nil encoder or dataset")
	case n < 2 || epochs < 1:
		return nil, 0, fmt.Errorf("watermark: refit: %d images, %d epochs: expected at least 2 and 1", n, epochs)
	}
	rr, err := rotatedReps(ctx, enc, ds, n, seed, "auto", 128)
	if err != nil {
		return nil, 0, fmt.Errorf("watermark: refit: %w", err)
	}
	const batch = 128
	dim, reps, labels := rr.dim, rr.reps, rr.labels

	h, err = NewHead(dim, seed)
	if err != nil {
		return nil, 0, err
	}
	tr, err := h.mlp.NewTrainer(torchnet.TrainerConfig{Loss: "xent", Optimizer: "adam"})
	if err != nil {
		h.Close()
		return nil, 0, err
	}
	for epoch := 0; epoch < epochs; epoch++ {
		if err := ctx.Err(); err != nil {
			h.Close()
			return nil, 0, err
		}
		perm := data.Permutation(n, seed+int64(epoch)+1)
		for start := 0; start < n; start += batch {
			b := perm[start:min(start+batch, n)]
			x := make([]float32, 0, len(b)*dim)
			y := make([]int64, 0, len(b))
			for _, i := range b {
				x = append(x, reps[i*dim:(i+1)*dim]...)
				y = append(y, labels[i])
			}
			if _, err := tr.Step(torchnet.Batch{Rows: len(b), X: x, Labels: y}, 1e-3); err != nil {
				h.Close()
				return nil, 0, fmt.Errorf("watermark: refit: %w", err)
			}
		}
	}
	pred, err := h.Predict(reps, n)
	if err != nil {
		h.Close()
		return nil, 0, err
	}
	right := 0
	for i, p := range pred {
		if p == labels[i] {
			right++
		}
	}
	h.Protocol.ImageSize = rr.size
	h.Protocol.Normalization = "none"
	if m := enc.Info().Metadata["normalization"]; m != "" {
		h.Protocol.Normalization = m
	}
	return h, float64(right) / float64(n), nil
}

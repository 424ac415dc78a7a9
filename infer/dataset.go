package infer

import (
	"context"
	"fmt"
	"strings"

	"github.com/ssl-onnx/ssl-onnx/data"
)

// FitDataset adapts ds to the encoder's declared input: gray images become 3-channel when the
// model wants 3 channels, and images are resized to the model's height/width.
func FitDataset(ds data.Dataset, info Info) (data.Dataset, error) {
	if len(info.InputShape) != 4 {
		return nil, fmt.Errorf("model input %s: expected rank 4 (NCHW)", shapeString(info.InputShape))
	}
	c, h, w := info.InputShape[1], info.InputShape[2], info.InputShape[3]
	var err error
	s := ds.Shape()
	if c == 3 && s.C == 1 {
		if ds, err = data.Gray3(ds); err != nil {
			return nil, err
		}
	} else if c > 0 && int(c) != s.C {
		return nil, fmt.Errorf("model wants %d channels, dataset has %d", c, s.C)
	}
	if h > 0 && w > 0 && h != w {
		return nil, fmt.Errorf("model input %s: only square inputs are supported", shapeString(info.InputShape))
	}
	if h > 0 && (int(h) != s.H || int(w) != s.W) {
		if ds, err = data.Resize(ds, int(h)); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// EmbedDataset runs enc over every image of ds (already fitted, see FitDataset) in batches of
// batch images and returns all representations. progress, if not nil, is called with the
// number of images done after each batch.
func EmbedDataset(ctx context.Context, enc Encoder, ds data.Dataset, norm data.Normalization, batch int, progress func(done int)) (Vectors, error) {
	if batch <= 0 {
		return Vectors{}, fmt.Errorf("batch size %d: must be positive", batch)
	}
	s := ds.Shape()
	n := ds.Len()
	var out Vectors
	buf := make([]float32, batch*s.Size())
	idx := make([]int, 0, batch)
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		idx = idx[:0]
		for i := start; i < end; i++ {
			idx = append(idx, i)
		}
		x := Images{N: len(idx), C: s.C, H: s.H, W: s.W, Data: buf[:len(idx)*s.Size()]}
		if err := data.Batch(ds, idx, norm, x.Data); err != nil {
			return Vectors{}, err
		}
		v, err := enc.Encode(ctx, x)
		if err != nil {
			return Vectors{}, fmt.Errorf("images %d-%d: %w", start, end-1, err)
		}
		if out.Data == nil {
			out = Vectors{D: v.D, Data: make([]float32, 0, n*v.D)}
		}
		out.Data = append(out.Data, v.Data...)
		out.N += v.N
		if progress != nil {
			progress(end)
		}
	}
	return out, nil
}

// Normalization picks a model's input normalisation: "auto" follows the model's
// "normalization" metadata (none when absent); "none"; or a dataset name (imagenet, cifar10 ...).
func Normalization(choice string, meta map[string]string) (data.Normalization, error) {
	name := choice
	if choice == "auto" || choice == "" {
		name = meta["normalization"]
	}
	switch strings.ToLower(name) {
	case "", "none":
		return data.Normalization{}, nil
	}
	n := data.NormalizationFor(name)
	if n.Mean == nil {
		return n, fmt.Errorf("normalization %q: expected none, auto or a dataset name (imagenet, cifar10, svhn, stl10, fmnist ...)", name)
	}
	return n, nil
}

package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/infer/npy"
	"github.com/ssl-onnx/ssl-onnx/models/zoo"
	"github.com/ssl-onnx/ssl-onnx/progress"
)

func runtimeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "runtime", Value: "ort", Usage: "ort (ONNX Runtime) or onnx-go (pure Go, slow)"},
		&cli.IntFlag{Name: "threads", Value: runtime.NumCPU(), Usage: "ONNX Runtime intra-op threads"},
		&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N (ONNX Runtime's CUDA execution provider)"},
		&cli.StringFlag{Name: "ort-lib", Usage: "path of libonnxruntime.so (default: $ONNXRUNTIME_LIB, else .deps/onnxruntime)"},
	}
}

// openEncoder opens the model ref (a file or builtin:<name>) with the runtime flags. A server
// (serving true) keeps ONNX Runtime's threads from spinning (see infer.Options.NoSpin).
func openEncoder(c *cli.Context, ref string, serving bool) (infer.Encoder, error) {
	path, err := zoo.Resolve(ref)
	if err != nil {
		return nil, err
	}
	switch c.String("runtime") {
	case "ort":
		return infer.OpenORT(path, infer.Options{Threads: c.Int("threads"), Device: c.String("device"), Library: c.String("ort-lib"),
			NoSpin: serving})
	case "onnx-go":
		return infer.OpenOnnxGo(path)
	}
	return nil, fmt.Errorf("--runtime %q: expected ort or onnx-go", c.String("runtime"))
}

func embedCommand() *cli.Command {
	return &cli.Command{
		Name:  "embed",
		Usage: "write the representations of a dataset split to a .npy file",
		Flags: append(append(datasetFlags(), runtimeFlags()...),
			&cli.StringFlag{Name: "model", Required: true, Usage: "ONNX encoder"},
			&cli.StringFlag{Name: "split", Value: "test"},
			&cli.IntFlag{Name: "limit", Usage: "embed the first N images only"},
			&cli.IntFlag{Name: "batch-size", Value: 256},
			&cli.StringFlag{Name: "norm", Value: "auto", Usage: "input normalisation: auto (from model metadata), none, or a dataset name"},
			&cli.StringFlag{Name: "out", Value: "embeddings.npy", Usage: ".npy file to write (N x D float32)"},
			&cli.StringFlag{Name: "labels", Usage: "also write the labels as .npy (float32) here"},
		),
		Action: func(c *cli.Context) error {
			enc, err := openEncoder(c, c.String("model"), false)
			if err != nil {
				return err
			}
			defer enc.Close()
			ds, err := data.Open(c.String("dataset"), c.String("data"), c.String("split"))
			if err != nil {
				return err
			}
			if n := c.Int("limit"); n > 0 && n < ds.Len() {
				if ds, err = data.First(ds, n); err != nil {
					return err
				}
			}
			info := enc.Info()
			if ds, err = infer.FitDataset(ds, info); err != nil {
				return fmt.Errorf("%s: %w", c.String("model"), err)
			}
			norm, err := infer.Normalization(c.String("norm"), info.Metadata)
			if err != nil {
				return err
			}
			bar := progress.New(os.Stderr, "embed", ds.Len())
			last := 0
			v, err := infer.EmbedDataset(c.Context, enc, ds, norm, c.Int("batch-size"), func(done int) {
				bar.Add(done-last, "")
				last = done
			})
			if err != nil {
				return err
			}
			bar.Done("")
			if err := npy.WriteFloat32(c.String("out"), []int{v.N, v.D}, v.Data); err != nil {
				return err
			}
			fmt.Printf("wrote %s: %d x %d representations of %s/%s (output %q)\n", c.String("out"), v.N, v.D, c.String("dataset"), c.String("split"), info.OutputName)
			if p := c.String("labels"); p != "" {
				lab := make([]float32, ds.Len())
				for i := range lab {
					lab[i] = float32(ds.Label(i))
				}
				if err := npy.WriteFloat32(p, []int{len(lab)}, lab); err != nil {
					return err
				}
				fmt.Printf("wrote %s: %d labels\n", p, len(lab))
			}
			return nil
		},
	}
}

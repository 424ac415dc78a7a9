package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/demo"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run the whole study on Fashion-MNIST: train, serve, steal over HTTP, defend, evaluate, report",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "quick", Usage: "a two-minute version (a tiny victim trained here, two losses, two budgets)"},
			&cli.StringFlag{Name: "victim", Usage: "one encoder to steal instead of both built-in ones (builtin:fmnist, builtin:fmnist-supervised, or an ONNX file)"},
			&cli.BoolFlag{Name: "train-victim", Usage: "train a fresh victim (3 epochs on 10000 images) instead of the built-in ones"},
			&cli.BoolFlag{Name: "fresh", Usage: "redo every stage (default: skip stages whose outputs exist)"},
			&cli.StringFlag{Name: "dir", Usage: "output directory (default runs/demo, or runs/demo-quick)"},
			&cli.IntFlag{Name: "threads", Value: runtime.NumCPU()},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N: training, serving, stealing and evaluation"},
		},
		Action: func(c *cli.Context) error {
			cfg := demo.Default()
			if c.Bool("quick") {
				cfg = demo.Quick()
			}
			if v := c.String("victim"); v != "" {
				cfg.Victims = []string{v}
			}
			if c.Bool("train-victim") {
				cfg.Victims = []string{""}
			}
			if d := c.String("dir"); d != "" {
				cfg.Dir = d
			}
			cfg.Fresh, cfg.Threads, cfg.Device = c.Bool("fresh"), c.Int("threads"), c.String("device")
			res, err := demo.Run(c.Context, cfg, os.Stderr)
			if err != nil {
				return err
			}
			fmt.Println()
			demo.PrintSummary(os.Stdout, res)
			fmt.Printf("\nreport: %s (results.json beside it); %.0f s\n", filepath.Join(cfg.Dir, "report.html"), res.Seconds)
			return nil
		},
	}
}

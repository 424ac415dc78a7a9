package main

import (
	"github.com/urfave/cli/v2"
)

func embedCommand() *cli.Command {
	return &cli.Command{Name: "embed", Usage: "write representations of a dataset split to .npy", Action: notYet}
}

func benchCommand() *cli.Command {
	return &cli.Command{Name: "bench", Usage: "benchmark inference and training throughput", Action: notYet}
}

func demoCommand() *cli.Command {
	return &cli.Command{Name: "demo", Usage: "run the whole study on Fashion-MNIST", Action: notYet}
}

func notYet(c *cli.Context) error {
	return cli.Exit("ssl-onnx "+c.Command.Name+": not yet implemented", 2)
}

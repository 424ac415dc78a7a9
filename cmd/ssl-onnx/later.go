package main

import (
	"github.com/urfave/cli/v2"
)

func demoCommand() *cli.Command {
	return &cli.Command{Name: "demo", Usage: "run the whole study on Fashion-MNIST", Action: notYet}
}

func notYet(c *cli.Context) error {
	return cli.Exit("ssl-onnx "+c.Command.Name+": not yet implemented", 2)
}

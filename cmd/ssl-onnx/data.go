package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/data"
)

func datasetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "dataset", Value: "fmnist", Usage: "dataset: fmnist, mnist, cifar10, cifar100, svhn, stl10, folder"},
		&cli.StringFlag{Name: "data", Usage: "directory holding the dataset's original files (default: fmnist's Debian package location)"},
	}
}

func dataCommand() *cli.Command {
	return &cli.Command{
		Name:  "data",
		Usage: "look at datasets",
		Subcommands: []*cli.Command{{
			Name:  "inspect",
			Usage: "print count, image shape, value range and label histogram of each split",
			Flags: append(datasetFlags(),
				&cli.StringSliceFlag{Name: "split", Value: cli.NewStringSlice("train", "test"), Usage: "splits to inspect"},
				&cli.StringFlag{Name: "grid", Usage: "write a PNG grid of the first images of the first split here"},
				&cli.IntFlag{Name: "grid-n", Value: 64, Usage: "images in the grid"},
			),
			Action: func(c *cli.Context) error {
				for i, split := range c.StringSlice("split") {
					ds, err := data.Open(c.String("dataset"), c.String("data"), split)
					if err != nil {
						return err
					}
					s, err := data.Inspect(ds)
					if err != nil {
						return err
					}
					fmt.Printf("%s/%s\n", c.String("dataset"), split)
					if err := s.Print(os.Stdout, ds.Classes()); err != nil {
						return err
					}
					if i == 0 && c.String("grid") != "" {
						if err := data.WriteGrid(ds, c.Int("grid-n"), 8, c.String("grid")); err != nil {
							return err
						}
						fmt.Printf("wrote %s\n", c.String("grid"))
					}
				}
				return nil
			},
		}},
	}
}

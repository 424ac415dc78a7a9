// Command ssl-onnx trains, exports, serves, steals and evaluates self-supervised image encoders.
//
// Each subcommand only parses flags into a config and calls a package function; see the
// README for examples.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/urfave/cli/v2"
)

func main() {
	var profile *os.File // the --cpuprofile file while the profile runs
	app := &cli.App{
		Name:  "ssl-onnx",
		Usage: "model extraction of self-supervised image encoders: train, export, serve, steal, evaluate",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the command to this file (go tool pprof)"},
		},
		Before: func(c *cli.Context) error {
			path := c.String("cpuprofile")
			if path == "" {
				return nil
			}
			f, err := os.Create(path)
			if err != nil {
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			profile = f
			return pprof.StartCPUProfile(f)
		},
		After: func(*cli.Context) error {
			if profile != nil {
				pprof.StopCPUProfile()
				return profile.Close()
			}
			return nil
		},
		Commands: []*cli.Command{
			dataCommand(),
			trainCommand(),
			exportCommand(),
			importCommand(),
			embedCommand(),
			stealCommand(),
			benchCommand(),
			serveCommand(),
			keysCommand(),
			demoCommand(),
			defendCommand(),
			evalCommand(),
			classifierCommand(),
			watermarkCommand(),
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.RunContext(ctx, os.Args); err != nil {
		var ee cli.ExitCoder
		if errors.As(err, &ee) {
			fmt.Fprintln(os.Stderr, "ssl-onnx:", err)
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "ssl-onnx:", err)
		os.Exit(1)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/defense"
	"github.com/ssl-onnx/ssl-onnx/study"
)

func defendCommand() *cli.Command {
	def := study.Default()
	return &cli.Command{
		Name:  "defend",
		Usage: "the defense study: every defense against legitimate users, attackers and a sybil attacker, through a real API",
		Description: "For each defense setting, serves the victim behind it on loopback (one API key per user), lets legitimate\n" +
			"users embed and probe their own labelled images, lets attackers steal the victim (and a sybil attacker split\n" +
			"over several keys), scores the detectors over the keys, evaluates every stolen copy against the undefended\n" +
			"victim and checks it for the owner's watermark. Writes results.json and report.html into --dir.\n\n" +
			"Defense specs (the list entry \"none\" is the undefended API, the baseline of every drop):\n" + defense.Help(),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "quick", Usage: "a two-minute version (two defenses, two users, one attacker, a sybil of two keys)"},
			&cli.StringFlag{Name: "victim", Value: def.Victim, Usage: "encoder to defend: builtin:fmnist-supervised, builtin:fmnist or an ONNX file"},
			&cli.StringFlag{Name: "secret", Usage: "the owner's watermark secret (default: the built-in victim's; none for a file)"},
			&cli.StringSliceFlag{Name: "defense", Usage: "defense settings to compare, repeatable (default: none, noise 0.1/0.5/1/2, round, topk, truncate, detect, prada, b4b)"},
			&cli.IntFlag{Name: "users", Value: def.Users, Usage: "legitimate keys (the last one is a catalogue user)"},
			&cli.IntFlag{Name: "user-images", Value: def.UserImages, Usage: "labelled train images per user"},
			&cli.IntFlag{Name: "test-images", Value: def.TestImages, Usage: "test images every user embeds and is scored on"},
			&cli.StringSliceFlag{Name: "loss", Usage: "attackers' losses, one key each (default: mse, infonce)"},
			&cli.IntFlag{Name: "num-queries", Value: def.Budget, Usage: "each attacker's budget (the sybil attacker's, over all its keys)"},
			&cli.IntFlag{Name: "seeds", Value: 1, Usage: "steal with every attacker this many times (training seeds), to report each copy's spread and how often the watermark is found"},
			&cli.IntFlag{Name: "sybils", Value: def.Sybils, Usage: "keys of the sybil attacker (0 = none)"},
			&cli.IntFlag{Name: "epochs", Value: def.StealEpochs, Usage: "stealing epochs"},
			&cli.Int64Flag{Name: "defense-seed", Value: def.DefenseSeed, Usage: "seed of the defenses' randomness (fixed: the study is an experiment)"},
			&cli.BoolFlag{Name: "fresh", Usage: "redo every stage (default: skip stages whose outputs exist)"},
			&cli.StringFlag{Name: "dir", Usage: "output directory (default runs/defend, or runs/defend-quick)"},
			&cli.IntFlag{Name: "threads", Value: runtime.NumCPU()},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N: the victim, the attackers and the evaluation"},
		},
		Action: func(c *cli.Context) error {
			cfg := def
			if c.Bool("quick") {
				cfg = study.Quick()
			}
			set := func(name string, dst *int) {
				if c.IsSet(name) {
					*dst = c.Int(name)
				}
			}
			set("users", &cfg.Users)
			set("user-images", &cfg.UserImages)
			set("test-images", &cfg.TestImages)
			set("num-queries", &cfg.Budget)
			set("seeds", &cfg.Seeds)
			set("sybils", &cfg.Sybils)
			set("epochs", &cfg.StealEpochs)
			if c.IsSet("victim") {
				cfg.Victim = c.String("victim")
			}
			if v := c.StringSlice("defense"); len(v) > 0 {
				cfg.Defenses = v
			}
			if v := c.StringSlice("loss"); len(v) > 0 {
				cfg.Losses, cfg.SybilLoss = v, v[0]
			}
			if d := c.String("dir"); d != "" {
				cfg.Dir = d
			}
			cfg.Secret, cfg.DefenseSeed = c.String("secret"), c.Int64("defense-seed")
			cfg.Fresh, cfg.Threads, cfg.Device = c.Bool("fresh"), c.Int("threads"), c.String("device")
			res, err := study.Run(c.Context, cfg, os.Stderr)
			if err != nil {
				return err
			}
			fmt.Println()
			if err := res.Print(os.Stdout); err != nil {
				return err
			}
			fmt.Printf("\nreport: %s (results.json beside it); %.0f s\n", filepath.Join(cfg.Dir, "report.html"), res.Seconds)
			return nil
		},
	}
}

package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/defense"
	"github.com/ssl-onnx/ssl-onnx/serve"
	"github.com/ssl-onnx/ssl-onnx/study"
)

func keysDetections(db cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "detections",
		Usage: "score a detector from serve's --decision-log: per key what it decided, then TPR, FPR, F1 and ROC-AUC with the given attacker keys as positives and every other key as negatives",
		Flags: []cli.Flag{
			db,
			&cli.StringFlag{Name: "log", Required: true, Usage: "the decision log serve --decision-log wrote"},
			&cli.StringSliceFlag{Name: "attackers", Required: true, Usage: "names (or ids) of the keys known to be attackers (repeatable or comma-separated)"},
		},
		Action: withStore(func(c *cli.Context, st *serve.Store) error {
			f, err := os.Open(c.String("log"))
			if err != nil {
				return err
			}
			defer f.Close()
			decisions, err := defense.ReadDecisions(f)
			if err != nil {
				return fmt.Errorf("%s: %w", c.String("log"), err)
			}
			keys, err := st.Keys(c.Context)
			if err != nil {
				return err
			}
			names, err := attackerIDs(keys, c.StringSlice("attackers"))
			if err != nil {
				return err
			}
			return printDetections(c.App.Writer, decisions, keys, names)
		}),
	}
}

// attackerIDs maps --attackers (names or ids) to key ids, refusing one the store lacks.
func attackerIDs(keys []serve.Key, refs []string) (map[string]bool, error) {
	ids := map[string]bool{}
	for _, ref := range refs {
		found := false
		for _, k := range keys {
			if ref == k.Name || ref == k.ID {
				ids[k.ID], found = true, true
			}
		}
		if !found {
			return nil, fmt.Errorf("--attackers %s: no such key in the database (see ssl-onnx keys list)", ref)
		}
	}
	return ids, nil
}

// printDetections writes the per-key table and each detector's scores.
func printDetections(w io.Writer, decisions []defense.KeyDecisions, keys []serve.Key, attackers map[string]bool) error {
	name := map[string]string{}
	for _, k := range keys {
		name[k.ID] = k.Name
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DETECTOR\tKEY\tROLE\tDECISIONS\tFLAGGED\tFIRST FLAG\tSUSPICION")
	byDetector := map[string][]study.KeyVerdict{}
	var order []string
	for _, d := range decisions {
		v := study.KeyVerdict{Key: d.Key, Role: "user", Queries: d.Decisions, Flagged: d.Flagged > 0, FirstFlag: d.FirstFlag, Score: d.Suspicion()}
		if n, ok := name[d.Key]; ok {
			v.Key = n
		}
		if attackers[d.Key] {
			v.Role = "attacker"
		}
		if _, seen := byDetector[d.Detector]; !seen {
			order = append(order, d.Detector)
		}
		byDetector[d.Detector] = append(byDetector[d.Detector], v)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%.3f\n", d.Detector, v.Key, v.Role, d.Decisions, d.Flagged, d.FirstFlag, v.Score)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, det := range order {
		s := study.Score(det, byDetector[det])
		fmt.Fprintf(w, "%s: TPR %.2f, FPR %.2f, F1 %.2f, ROC-AUC %.2f over %d attacker / %d other keys (keys it never judged are not counted)\n",
			det, s.TPR, s.FPR, s.F1, s.AUC, s.Positives, s.Negatives)
	}
	if len(order) == 0 {
		fmt.Fprintln(w, "the log holds no decision")
	}
	return nil
}

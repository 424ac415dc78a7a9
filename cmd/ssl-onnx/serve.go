package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ssl-onnx/ssl-onnx/defense"
	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/models/torchnet"
	"github.com/ssl-onnx/ssl-onnx/serve"
)

const defaultDB = "runs/server.db"

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve an ONNX encoder over HTTP (/v1/embeddings, Open Inference Protocol v2) with API keys, quotas and a ledger",
		Flags: append(runtimeFlags(),
			&cli.StringFlag{Name: "model", Required: true, Usage: "ONNX encoder to serve, or gateway mode: an Open Inference Protocol v2 model URL (http://host:port/v2/models/NAME: Triton, KServe, another ssl-onnx serve) served with this server's keys, quotas, ledger, defenses and batching"},
			&cli.StringFlag{Name: "upstream-key", EnvVars: []string{"SSL_ONNX_UPSTREAM_KEY"}, Usage: "gateway mode: this server's API key at the --model URL, if it needs one"},
			&cli.StringFlag{Name: "name", Usage: "model name in the API (default: the file name without .onnx)"},
			&cli.StringFlag{Name: "addr", Value: serve.DefaultAddr, Usage: "listen address (loopback by default; a non-loopback address such as 0.0.0.0:8700 needs --tls-cert/--tls-key or --insecure)"},
			&cli.DurationFlag{Name: "idempotency-window", Value: serve.DefaultIdempotencyWindow, Usage: "how long a billed Idempotency-Key is remembered: a repeat within it is answered again without billing"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate (chain): serve HTTPS"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM private key of --tls-cert"},
			&cli.BoolFlag{Name: "insecure", Usage: "allow a non-loopback --addr without TLS (only behind a proxy that terminates TLS)"},
			&cli.StringFlag{Name: "db", Value: defaultDB, Usage: "database of API keys and the ledger (see: ssl-onnx keys): a SQLite file, or postgres://user:password@host:port/dbname for several replicas"},
			&cli.IntFlag{Name: "max-batch", Value: serve.DefaultMaxBatch, Usage: "most images per model call when batching concurrent requests (1 = no batching)"},
			&cli.DurationFlag{Name: "max-delay", Usage: "how long the first request of a batch waits for others (default 0: batch only what queued while the model was busy)"},
			&cli.IntFlag{Name: "workers", Value: serve.DefaultWorkers, Usage: "model calls allowed at once"},
			&cli.StringFlag{Name: "max-body", Value: "32MB", Usage: "largest request body (B, KB, MB, GB: powers of 1024)"},
			&cli.IntFlag{Name: "max-images", Value: serve.DefaultMaxImages, Usage: "most images per request"},
			&cli.IntFlag{Name: "max-pixels", Value: serve.DefaultMaxPixels, Usage: "largest decoded PNG/JPEG image, width x height"},
			&cli.IntFlag{Name: "max-inflight", Value: serve.DefaultMaxInflight, Usage: "most requests one key may have in flight (more get 429)"},
			&cli.IntFlag{Name: "max-queue", Value: serve.DefaultMaxQueue, Usage: "most requests waiting for a batch over all keys (more get 503 with Retry-After)"},
			&cli.IntFlag{Name: "max-request-pixels", Value: serve.DefaultMaxRequestPixels, Usage: "most decoded PNG/JPEG pixels in one request, summed over its images (413 above)"},
			&cli.StringFlag{Name: "norm", Value: "auto", Usage: "normalisation of decoded PNG/JPEG images: auto (from model metadata), none, or a dataset name"},
			&cli.StringSliceFlag{Name: "defense", Usage: "defense spec to wrap the encoder with (repeatable, applied in order): " + strings.Join(defense.Names(), ", ")},
			&cli.Int64Flag{Name: "defense-seed", Usage: "fixed seed of the defenses' randomness and per-key transforms, for reproducible experiments only (default: a random secret kept in --db; anyone who knows a fixed seed and a key's id can recompute that key's noise and transform)"},
			&cli.StringFlag{Name: "decision-log", Usage: "append every decision of the detecting defenses (detect, prada) to this file as JSON lines (key id, row, score, flagged); `ssl-onnx keys detections` scores them"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 30 * time.Second, Usage: "how long SIGTERM waits for requests in flight"},
		),
		Action: func(c *cli.Context) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			if err := serve.CheckExposure(c.String("addr"), c.String("tls-cert") != "", c.Bool("insecure")); err != nil {
				return err
			}
			maxBody, err := parseSize(c.String("max-body"))
			if err != nil {
				return fmt.Errorf("--max-body: %w", err)
			}
			enc, name, err := openServed(c)
			if err != nil {
				return err
			}
			defer enc.Close()
			info := enc.Info()
			norm, err := infer.Normalization(c.String("norm"), info.Metadata)
			if err != nil {
				return err
			}
			log.Info("model loaded", "path", redacted(c.String("model")), "name", name, "input", info.InputName, "shape", fmt.Sprint(info.InputShape),
				"output", info.OutputName, "dim", info.OutputDim, "runtime", runtimeOf(c), "threads", c.Int("threads"),
				"architecture", info.Metadata["architecture"], "normalization", fmt.Sprint(norm.Mean, norm.Std))
			st, err := serve.OpenStore(c.String("db"))
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := st.Keys(c.Context)
			if err != nil {
				return err
			}
			active := 0
			for _, k := range keys {
				if k.Active() {
					active++
				}
			}
			log.Info("key store opened", "db", st.Path(), "active_keys", active, "training_allocator", torchnet.AllocatorTuned())
			if active == 0 {
				log.Warn("no active API key: every inference request will get 401; add one with `ssl-onnx keys add --name NAME --quota N --db " + st.Path() + "`")
			}
			seed := c.Int64("defense-seed")
			if !c.IsSet("defense-seed") {
				if seed, err = st.DefenseSecret(c.Context); err != nil {
					return err
				}
			}
			srv, err := serve.New(enc, serve.Config{
				Store: st, ModelName: name, MaxBatch: c.Int("max-batch"), MaxDelay: c.Duration("max-delay"), Workers: c.Int("workers"),
				MaxBody: maxBody, MaxImages: c.Int("max-images"), MaxPixels: c.Int("max-pixels"), MaxRequestPixels: c.Int("max-request-pixels"),
				MaxInflight: c.Int("max-inflight"), MaxQueue: c.Int("max-queue"), Norm: norm, Defenses: c.StringSlice("defense"),
				DefenseSeed:     seed,
				ShutdownTimeout: c.Duration("shutdown-timeout"), Logger: log, TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key"),
				IdempotencyWindow: c.Duration("idempotency-window"),
			})
			if err != nil {
				return err
			}
			defer srv.Close()
			if p := c.String("decision-log"); p != "" {
				closeLog, err := connectDecisionLog(srv.Encoder(), p, log)
				if err != nil {
					return err
				}
				defer closeLog()
			}
			return srv.ListenAndServe(c.Context, c.String("addr"))
		},
	}
}

// openServed opens what serve serves: an ONNX file, or in gateway mode the upstream model at
// an http(s) URL. It returns the encoder and the model's name in the API.
func openServed(c *cli.Context) (infer.Encoder, string, error) {
	model, name := c.String("model"), c.String("name")
	if isURL(model) {
		enc, upstreamName, err := serve.DialUpstream(model, c.String("upstream-key"))
		if name == "" {
			name = upstreamName
		}
		return enc, name, err
	}
	if name == "" {
		name = modelNameFromPath(model)
	}
	enc, err := openEncoder(c, model, true)
	return enc, name, err
}

// runtimeOf names what runs the model, for the start-up log.
func runtimeOf(c *cli.Context) string {
	if isURL(c.String("model")) {
		return "upstream (gateway mode)"
	}
	return c.String("runtime")
}

// redacted is --model for the log: a URL without any password in it.
func redacted(model string) string {
	if u, err := url.Parse(model); err == nil && isURL(model) {
		return u.Redacted()
	}
	return model
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func modelNameFromPath(path string) string {
	n := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	n = strings.Trim(unsafeName.ReplaceAllString(n, "-"), "-._")
	if n == "" {
		return "encoder"
	}
	return n
}

// parseSize reads "32MB", "512KiB", "1048576" (powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q: expected a positive size such as 32MB, 512KB or 1048576", s)
	}
	return n * mult, nil
}

// connectDecisionLog sends the decisions of the encoder's detecting defenses to the file at
// path (appended to); the returned function closes it and reports a write error.
func connectDecisionLog(enc infer.Encoder, path string, log *slog.Logger) (func(), error) {
	det, hasDetect := defense.Find[*defense.Detector](enc)
	prada, hasPRADA := defense.Find[*defense.PRADA](enc)
	if !hasDetect && !hasPRADA {
		return nil, fmt.Errorf("--decision-log %s: no detecting defense to log (add --defense detect or --defense prada)", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--decision-log: %w", err)
	}
	dl := defense.NewDecisionLog(f)
	if hasDetect {
		det.SetLogger(dl.Logger("detect"))
	}
	if hasPRADA {
		prada.SetLogger(dl.Logger("prada"))
	}
	log.Info("decision log", "path", path)
	return func() {
		if err := errors.Join(dl.Err(), f.Close()); err != nil {
			log.Error("decision log incomplete", "path", path, "err", err)
		}
	}, nil
}

func keysCommand() *cli.Command {
	db := &cli.StringFlag{Name: "db", Value: defaultDB, Usage: "database of the server, a SQLite file or a postgres:// URL (may be in use by running servers)"}
	return &cli.Command{
		Name:        "keys",
		Usage:       "manage the API keys of ssl-onnx serve and read its ledger",
		Subcommands: []*cli.Command{keysAdd(db), keysList(db), keysRevoke(db), keysUsage(db), keysDetections(db)},
	}
}

// withStore runs fn on the store named by --db and closes it.
func withStore(fn func(c *cli.Context, st *serve.Store) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		st, err := serve.OpenStore(c.String("db"))
		if err != nil {
			return err
		}
		defer st.Close()
		return fn(c, st)
	}
}

func keysAdd(db cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "add",
		Usage: "create a key and print its secret (shown once; only its SHA-256 is stored)",
		Flags: []cli.Flag{
			db,
			&cli.StringFlag{Name: "name", Required: true, Usage: "key name (letters, digits, . _ -)"},
			&cli.Int64Flag{Name: "quota", Required: true, Usage: "total images the key may have answered (0 = unlimited)"},
			&cli.Float64Flag{Name: "rate", Value: 0, Usage: "images per second (token bucket; 0 = unlimited)"},
		},
		Action: withStore(func(c *cli.Context, st *serve.Store) error {
			k, secret, err := st.AddKey(c.Context, c.String("name"), c.Int64("quota"), c.Float64("rate"))
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "created key %s (%s): quota %s, rate %s; the secret below is shown only now\n",
				k.Name, k.ID, unlimited(float64(k.Quota), "images"), unlimited(k.Rate, "images/s"))
			fmt.Println(secret)
			return nil
		}),
	}
}

func keysList(db cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list keys: name, id, quota, used, rate, revoked, created",
		Flags: []cli.Flag{db, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: withStore(func(c *cli.Context, st *serve.Store) error {
			keys, err := st.Keys(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if keys == nil {
					keys = []serve.Key{}
				}
				return enc.Encode(keys)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tQUOTA\tUSED\tRATE\tREVOKED\tCREATED")
			for _, k := range keys {
				rev := "-"
				if !k.Active() {
					rev = k.Revoked.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", k.Name, k.ID, unlimited(float64(k.Quota), ""), k.Used,
					unlimited(k.Rate, "/s"), rev, k.Created.Format(time.RFC3339))
			}
			return tw.Flush()
		}),
	}
}

func keysRevoke(db cli.Flag) *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "revoke a key by name or id (takes effect at its next request, also in a running server)",
		ArgsUsage: "<name|id>",
		Flags:     []cli.Flag{db},
		Before: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit(fmt.Sprintf("keys revoke: expected one argument, the key's name or id, found %d (%q); flags go before it: ssl-onnx keys revoke --db runs/server.db alice", c.NArg(), c.Args().Slice()), 2)
			}
			return nil
		},
		Action: withStore(func(c *cli.Context, st *serve.Store) error {
			k, err := st.Revoke(c.Context, c.Args().First())
			if err != nil {
				return err
			}
			fmt.Printf("revoked key %s (%s); %d images were answered to it\n", k.Name, k.ID, k.Used)
			return nil
		}),
	}
}

func keysUsage(db cli.Flag) *cli.Command {
	return &cli.Command{
		Name:      "usage",
		Usage:     "print the ledger: images and requests answered per key per day (UTC)",
		ArgsUsage: "[name|id]",
		Flags:     []cli.Flag{db},
		Action: withStore(func(c *cli.Context, st *serve.Store) error {
			keys, err := st.Keys(c.Context)
			if err != nil {
				return err
			}
			names := map[string]string{}
			id := ""
			for _, k := range keys {
				names[k.ID] = k.Name
				if ref := c.Args().First(); ref != "" && (ref == k.ID || (ref == k.Name && (id == "" || k.Active()))) {
					id = k.ID
				}
			}
			if c.NArg() > 0 && id == "" {
				return fmt.Errorf("keys usage: no key with name or id %q", c.Args().First())
			}
			days, err := st.Usage(c.Context, id)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tDAY\tIMAGES\tREQUESTS")
			for _, d := range days {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", names[d.KeyID], d.KeyID, d.Day, d.Images, d.Requests)
			}
			return tw.Flush()
		}),
	}
}

func unlimited(v float64, unit string) string {
	if v <= 0 {
		return "unlimited"
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if unit != "" && unit[0] != '/' {
		s += " "
	}
	return s + unit
}

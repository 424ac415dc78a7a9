package serve

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ssl-onnx/ssl-onnx/data"
	"github.com/ssl-onnx/ssl-onnx/defense"
	"github.com/ssl-onnx/ssl-onnx/infer"
)

// DefaultAddr is where the server listens unless told otherwise: loopback only, so that
// exposing the API is a deliberate choice.
const DefaultAddr = "127.0.0.1:8700"

// Defaults of Config's zero fields.
const (
	DefaultMaxBatch  = 64
	DefaultWorkers   = 1
	DefaultMaxBody   = 32 << 20
	DefaultMaxImages = 256
	DefaultMaxPixels = 2048 * 2048
	// DefaultMaxRequestPixels bounds the decoding work of one JSON request: 256 images of
	// 512 x 512 (an ImageNet client sending 256 x 224 x 224 needs a fifth of it).
	DefaultMaxRequestPixels = 256 * 512 * 512
	DefaultMaxInflight      = 16
	DefaultMaxQueue         = 1024
)

// Config configures a Server. Zero fields take the defaults above.
type Config struct {
	// Store holds the API keys and the ledger; required.
	Store *Store
	// ModelName is the name of the model in the API ("encoder" if empty).
	ModelName string
	// MaxBatch is the most images coalesced into one Encode call; 1 disables batching.
	MaxBatch int
	// MaxDelay is how long the first request of a batch waits for others. The default, 0,
	// does not wait: a batch takes the requests that queued while the model was busy, which
	// under load fills batches anyway and keeps a lone caller's latency low (measured with
	// the ImageNet-stem ResNet-18 on 2 cores: p50 1.7 ms for one image, against 5.4 ms with a
	// 2 ms wait, and the same throughput for 64 concurrent single-image clients).
	MaxDelay time.Duration
	// Workers is the number of Encode calls allowed to run at once (default 1: ONNX
	// Runtime already uses all intra-op threads for one call). Several workers of fewer
	// threads each (`serve --workers 2 --threads 1` on 2 cores) trade latency for
	// throughput when clients send large batches concurrently (README, "Measured numbers").
	Workers int
	// MaxBody is the largest request body in bytes (default 32 MiB).
	MaxBody int64
	// MaxImages is the most images in one request (default 256).
	MaxImages int
	// MaxPixels is the largest decoded image, width x height (default 2048 x 2048).
	MaxPixels int
	// MaxRequestPixels is the most decoded pixels in one request, summed over its images
	// (default DefaultMaxRequestPixels; more get 413).
	MaxRequestPixels int
	// MaxInflight is the most requests one key may have in flight (default 16; more get 429);
	// MaxQueue the most requests waiting for a batch over all keys (default 1024; more get 503
	// with Retry-After).
	MaxInflight, MaxQueue int
	// Norm is the normalisation applied to decoded PNG/JPEG images after scaling pixels to
	// [0,1]; raw tensors are passed as sent. The zero value applies none.
	Norm data.Normalization
	// Defenses are defense specs (see defense.Help), composed around the encoder in order.
	Defenses []string
	// DefenseSeed seeds the defenses' randomness (noise, B4B's per-key transforms). Anyone who
	// knows it and a key's id can recompute a key's transform: use a secret value in
	// production and a fixed one only for reproducible experiments.
	DefenseSeed int64
	// HTTP timeouts (defaults 10 s header, 60 s read, 120 s write, 120 s idle) and the
	// graceful-shutdown limit (default 30 s).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout, ShutdownTimeout time.Duration
	// IdempotencyWindow is how long a billed Idempotency-Key is remembered (default 24 h): a
	// request repeating it within the window is answered again without billing.
	IdempotencyWindow time.Duration
	// TLSCert and TLSKey, when both set, are the PEM certificate (chain) and private key the
	// server speaks HTTPS with; API keys then never cross the network in clear text.
	TLSCert, TLSKey string
	// Logger receives startup, shutdown and error lines (default slog.Default()).
	Logger *slog.Logger
	// Registry receives the Prometheus metrics; nil makes a private registry with the Go
	// and process collectors.
	Registry *prometheus.Registry
}

// Server serves one encoder over HTTP: /v1/embeddings, the Open Inference Protocol v2
// (/v2/...), /metrics and /healthz. It authenticates callers with API keys, enforces their
// quotas and rate limits, batches their requests and records every answered image in the
// ledger before replying. Make one with New.
type Server struct {
	enc    infer.Encoder
	cfg    Config
	info   infer.Info
	name   string
	dim    int
	spec   inputSpec
	log    *slog.Logger
	store  *Store
	adm    *admission
	batch  *batcher
	ledger *ledgerWriter
	m      *metrics
	mux    *http.ServeMux
	ready  atomic.Bool
	tls    *tls.Config // nil: plain HTTP
	// stopForget ends the clean-up of expired idempotency records.
	stopForget chan struct{}
	// blockedKeys remembers the keys whose block was logged (once per key).
	blockedKeys sync.Map

	closeOnce sync.Once
}

var modelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// New makes a server for enc. enc must be goroutine-safe (OpenORT's is). The server does
// not close enc or the store.
func New(enc infer.Encoder, cfg Config) (*Server, error) {
	if enc == nil {
		return nil, errors.New("serve: nil encoder")
	}
	if cfg.Store == nil {
		return nil, errors.New("serve: Config.Store is required (API keys and ledger)")
	}
	if cfg.ModelName == "" {
		cfg.ModelName = "encoder"
	}
	if !modelName.MatchString(cfg.ModelName) {
		return nil, fmt.Errorf("serve: model name %q: expected 1-128 letters, digits, '.', '_', '-'", cfg.ModelName)
	}
	if cfg.MaxBatch < 0 || cfg.Workers < 0 || cfg.MaxBody < 0 || cfg.MaxImages < 0 || cfg.MaxPixels < 0 || cfg.MaxRequestPixels < 0 {
		return nil, fmt.Errorf("serve: negative limit in config (max batch %d, workers %d, max body %d, max images %d, max pixels %d, max request pixels %d)",
			cfg.MaxBatch, cfg.Workers, cfg.MaxBody, cfg.MaxImages, cfg.MaxPixels, cfg.MaxRequestPixels)
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.ReadHeaderTimeout, 10*time.Second)
	def(&cfg.ReadTimeout, 60*time.Second)
	def(&cfg.WriteTimeout, 120*time.Second)
	def(&cfg.IdleTimeout, 120*time.Second)
	def(&cfg.ShutdownTimeout, 30*time.Second)
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxImages == 0 {
		cfg.MaxImages = DefaultMaxImages
	}
	if cfg.MaxPixels == 0 {
		cfg.MaxPixels = DefaultMaxPixels
	}
	if cfg.MaxRequestPixels == 0 {
		cfg.MaxRequestPixels = DefaultMaxRequestPixels
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.Defenses) > 0 {
		wrapped, err := defense.Compose(enc, cfg.Defenses, cfg.DefenseSeed)
		if err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		enc = wrapped
	}
	info := enc.Info()
	if len(info.InputShape) != 4 {
		return nil, fmt.Errorf("serve: model input shape %v: expected NCHW (4 dimensions)", info.InputShape)
	}
	c, h, w := info.InputShape[1], info.InputShape[2], info.InputShape[3]
	if c <= 0 || h <= 0 || w <= 0 {
		return nil, fmt.Errorf("serve: model input shape %v: C, H and W must be fixed to serve it", info.InputShape)
	}
	s := &Server{
		enc: enc, cfg: cfg, info: info, name: cfg.ModelName, dim: info.OutputDim, log: cfg.Logger, store: cfg.Store,
		spec: inputSpec{C: int(c), H: int(h), W: int(w), maxImages: cfg.MaxImages, maxPixels: cfg.MaxPixels, maxTotal: cfg.MaxRequestPixels, norm: cfg.Norm},
	}
	if s.dim <= 0 { // dynamic output dimension: ask the model once
		v, err := enc.Encode(context.Background(), infer.Images{N: 1, C: s.spec.C, H: s.spec.H, W: s.spec.W, Data: make([]float32, s.spec.C*s.spec.H*s.spec.W)})
		if err != nil {
			return nil, fmt.Errorf("serve: probing the output dimension: %w", err)
		}
		s.dim = v.D
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, fmt.Errorf("serve: TLS needs both a certificate and a key (got certificate %q, key %q)", cfg.TLSCert, cfg.TLSKey)
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("serve: TLS certificate %s / key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.IdempotencyWindow < 0 {
		return nil, fmt.Errorf("serve: idempotency window %v: expected a positive duration", cfg.IdempotencyWindow)
	}
	if cfg.IdempotencyWindow > 0 {
		cfg.Store.SetIdempotencyWindow(cfg.IdempotencyWindow)
	}
	s.stopForget = make(chan struct{})
	go s.forgetBilled(time.Hour)
	s.m = newMetrics(cfg.Registry)
	s.adm = newAdmission()
	s.adm.maxReqs = cfg.MaxInflight
	s.batch = newBatcher(cfg.MaxBatch, cfg.MaxDelay, cfg.Workers)
	s.batch.maxQueue = cfg.MaxQueue
	s.batch.encode = enc.Encode
	s.ledger = newLedgerWriter(cfg.Store, func(entries int, d time.Duration) {
		s.m.commitSize.Observe(float64(entries))
		s.m.commitTime.Observe(d.Seconds())
	})
	s.batch.record = s.ledger.record
	s.batch.observe = func(images int, d time.Duration) {
		s.m.batchSize.Observe(float64(images))
		s.m.encodeTime.Observe(d.Seconds())
	}
	s.batch.depth = func(delta int) { s.m.queueDepth.Add(float64(delta)) }
	s.routes()
	s.ready.Store(true)
	return s, nil
}

// Encoder is the encoder the server answers with: the model wrapped in its defenses (find a
// defense's state with defense.Find).
func (s *Server) Encoder() infer.Encoder { return s.enc }

// Handler returns the server's HTTP handler (for tests or embedding in another server).
func (s *Server) Handler() http.Handler { return s.mux }

// Close stops the batcher after the queued requests are answered. Requests arriving
// afterwards get 503. It does not close the encoder or the store.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopForget)
		s.ready.Store(false)
		s.batch.close()
		s.ledger.close()
	})
	return nil
}

// CheckExposure refuses to serve a non-loopback address in clear text: bearer API keys would
// cross the network readable by anyone on the path. insecure overrides it (a TLS-terminating
// proxy in front, say).
func CheckExposure(addr string, tls, insecure bool) error {
	if tls || insecure {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("serve: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("serve: address %q is not loopback: API keys would travel in clear text; give --tls-cert and --tls-key, or --insecure if a TLS proxy terminates in front of this server", addr)
}

// ListenAndServe listens on addr (DefaultAddr if empty) and serves until ctx is done,
// then shuts down gracefully (see Serve).
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Running is a server started in the background by Start (for programs that embed the API:
// the demo, the benchmark, tests).
type Running struct {
	*Server
	URL    string // http://host:port
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Start builds a server for enc and serves it on addr ("127.0.0.1:0" picks a free loopback
// port) until Stop.
func Start(enc infer.Encoder, cfg Config, addr string) (*Running, error) {
	srv, err := New(enc, cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("serve: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	scheme := "http://"
	if srv.tls != nil {
		scheme = "https://"
	}
	r := &Running{Server: srv, URL: scheme + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx, ln) }()
	return r, nil
}

// Stop shuts the server down gracefully and returns what Serve returned; later calls return
// the same. The encoder and the store stay open (they belong to the caller).
func (r *Running) Stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
		r.Server.Close()
	})
	return r.err
}

// idleTrimInterval is how often a server checks whether a burst has ended (see idleTrim).
const idleTrimInterval = 2 * time.Second

// Serve serves on ln until ctx is done (SIGTERM in the CLI). Shutdown is graceful: the
// listener closes, readiness turns false, requests in flight are finished and answered
// (within Config.ShutdownTimeout), then Serve returns nil. Once a burst of requests has
// ended, the memory it freed goes back to the system (see idleTrim).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	scheme := "http://"
	if s.tls != nil {
		ln, scheme = tls.NewListener(ln, s.tls), "https://"
	}
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("serving", "model", s.name, "input", s.info.InputName, "shape", fmt.Sprintf("N,%s", s.spec.shape()),
		"output", s.info.OutputName, "dim", s.dim, "addr", scheme+ln.Addr().String(),
		"max_batch", s.cfg.MaxBatch, "max_delay", s.batch.maxDelay, "workers", s.cfg.Workers)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	tctx, stopTrim := context.WithCancel(ctx)
	defer stopTrim()
	go s.m.idle.run(tctx, idleTrimInterval, releaseMemory)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing requests in flight", "reason", context.Cause(ctx), "timeout", s.cfg.ShutdownTimeout)
	s.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc
	if err != nil {
		hs.Close()
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	s.log.Info("shut down cleanly")
	return nil
}

// routes registers every endpoint; a path with the wrong method answers 405 JSON and an
// unknown path 404 JSON.
func (s *Server) routes() {
	s.mux = http.NewServeMux()
	methods := map[string][]string{}
	var order []string
	route := func(method, path, endpoint string, h http.HandlerFunc) {
		s.mux.Handle(method+" "+path, s.m.instrument(endpoint, h))
		if _, ok := methods[path]; !ok {
			order = append(order, path)
		}
		methods[path] = append(methods[path], method)
	}
	route("GET", "/healthz", "healthz", s.handleHealthz)
	route("GET", "/metrics", "metrics", s.m.handler.ServeHTTP)
	route("GET", "/v1/models", "models", s.handleModels)
	route("POST", "/v1/embeddings", "embeddings", s.handleEmbeddings)
	route("GET", "/v2", "v2_server", s.handleServerMetadata)
	route("GET", "/v2/health/live", "v2_live", s.handleLive)
	route("GET", "/v2/health/ready", "v2_ready", s.handleReady)
	for _, prefix := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		route("GET", prefix, "v2_metadata", s.handleModelMetadata)
		route("GET", prefix+"/ready", "v2_model_ready", s.handleModelReady)
		route("POST", prefix+"/infer", "v2_infer", s.handleInfer)
	}
	for _, path := range order {
		allow := strings.Join(methods[path], ", ")
		if slices.Contains(methods[path], "GET") {
			allow += ", HEAD"
		}
		s.mux.Handle(path, s.m.instrument("other", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s %s: method not allowed, expected %s", r.Method, r.URL.Path, allow))
		}))
	}
	s.mux.Handle("/", s.m.instrument("other", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, "not_found", "%s %s: no such endpoint (see /v1/embeddings, /v2/models/%s/infer, /metrics, /healthz)", r.Method, r.URL.Path, s.name))
	}))
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	st := http.StatusOK
	if !s.ready.Load() {
		st = http.StatusServiceUnavailable
	}
	writeJSON(w, st, map[string]bool{"ready": st == http.StatusOK})
}

func (s *Server) handleServerMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"name": "ssl-onnx", "version": "1", "extensions": []string{}})
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{{
		"id": s.name, "object": "model", "dim": s.dim, "input": []int{s.spec.C, s.spec.H, s.spec.W},
	}}})
}

func (s *Server) handleModelMetadata(w http.ResponseWriter, r *http.Request) {
	if err := s.modelFromPath(r); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.modelMetadata())
}

func (s *Server) handleModelReady(w http.ResponseWriter, r *http.Request) {
	if err := s.modelFromPath(r); err != nil {
		writeError(w, err)
		return
	}
	s.handleReady(w, r)
}

// authenticate resolves the caller's key from "Authorization: Bearer <secret>".
func (s *Server) authenticate(r *http.Request) (Key, error) {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	unauth := func(code, format string, a ...any) error {
		e := errorf(http.StatusUnauthorized, code, format, a...)
		e.header = http.Header{"Www-Authenticate": {`Bearer realm="ssl-onnx"`}}
		return e
	}
	if h == "" {
		return Key{}, unauth("missing_key", "missing API key: send the header Authorization: Bearer <secret>")
	}
	scheme, secret, _ := strings.Cut(h, " ")
	secret = strings.TrimSpace(secret)
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return Key{}, unauth("bad_authorization", "Authorization header: expected \"Bearer <secret>\", found scheme %q", scheme)
	}
	k, err := s.store.Authenticate(r.Context(), secret)
	switch {
	case errors.Is(err, ErrUnknownKey):
		return Key{}, unauth("invalid_key", "invalid API key")
	case errors.Is(err, ErrRevokedKey):
		return Key{}, unauth("revoked_key", "%v", err)
	case err != nil:
		return Key{}, err
	}
	return k, nil
}

// readBody reads the whole body up to MaxBody bytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return s.readBodyUpTo(w, r, s.cfg.MaxBody)
}

// readBodyUpTo reads the whole body up to limit bytes.
func (s *Server) readBodyUpTo(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var b []byte
	var err error
	if r.ContentLength > 0 {
		// One allocation of the announced size (a raw batch is megabytes: ReadAll would grow
		// and copy its buffer repeatedly), then make sure nothing follows.
		b = make([]byte, r.ContentLength)
		if _, err = io.ReadFull(body, b); err == nil {
			var extra [1]byte
			if n, _ := body.Read(extra[:]); n > 0 {
				err = fmt.Errorf("more bytes than the Content-Length of %d", r.ContentLength)
			}
		}
	} else {
		b, err = io.ReadAll(body)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds the limit of %d bytes", limit)
		}
		return nil, badRequest("bad_body", "reading the request body: %v", err)
	}
	return b, nil
}

// answer is a request's outcome: its vectors and the key's state after it.
type answer struct {
	v        infer.Vectors
	key      Key
	used     int64
	rate     rateState
	replayed bool // an Idempotency-Key billed before: answered again, not billed
}

// run admits x for k, batches it, and returns its vectors once recorded in the ledger.
func (s *Server) run(ctx context.Context, k Key, x infer.Images) (answer, error) {
	rs, err := s.adm.admit(k, x.N, isRepeat(ctx))
	if err != nil {
		return answer{}, err
	}
	return s.runAdmitted(ctx, k, x, rs)
}

// runAdmitted is run after admission: it ends the reservation made for x.N images.
func (s *Server) runAdmitted(ctx context.Context, k Key, x infer.Images, rs rateState) (answer, error) {
	res := s.batch.submit(ctx, k.ID, x)
	// Rate tokens come back only when the server failed before the model ran: compute that
	// was spent stays rate-limited; what was not answered is never billed either way.
	s.adm.release(k, x.N, res.err != nil && !res.ran, res.used)
	if res.err != nil {
		switch {
		case errors.Is(res.err, defense.ErrBlocked):
			s.noteBlocked(k)
			return answer{}, errBlocked
		case ctx.Err() == nil && asAPIError(res.err).status >= 500:
			s.log.Error("request failed", "key", k.Name, "images", x.N, "err", res.err)
		}
		return answer{}, res.err
	}
	s.m.images.Add(float64(x.N))
	a := answer{v: res.v, key: k, used: res.used, rate: rs, replayed: res.replayed}
	if res.replayed && a.used == 0 {
		a.used = k.Used
	}
	return a, nil
}

// isRepeat says whether the request repeats an Idempotency-Key billed before.
func isRepeat(ctx context.Context) bool { id := idemOf(ctx); return id != nil && id.repeat }

// errBlocked is what a key blocked by a detector is told: no statistic, threshold or key id
// (the detector's internals would help an attacker tune around it).
var errBlocked = errorf(http.StatusForbidden, "blocked", "this API key is blocked; contact the provider")

// noteBlocked counts a blocked request and logs the key's first one at Warn (the detector's
// reason goes to the log, not to the caller).
func (s *Server) noteBlocked(k Key) {
	s.m.blocked.Inc()
	if _, seen := s.blockedKeys.LoadOrStore(k.ID, true); !seen {
		s.log.Warn("key blocked by a defense", "key", k.Name, "id", k.ID)
	}
}

func (a answer) setHeaders(h http.Header) {
	if a.replayed {
		h.Set("Idempotent-Replayed", "true")
	}
	h.Set("X-Quota-Used", strconv.FormatInt(a.used, 10))
	if a.key.Quota > 0 {
		h.Set("X-Quota-Limit", strconv.FormatInt(a.key.Quota, 10))
		h.Set("X-Quota-Remaining", strconv.FormatInt(max(a.key.Quota-a.used, 0), 10))
	}
	a.rate.setHeaders(h)
}

// embeddingsRequest is the JSON body of POST /v1/embeddings.
type embeddingsRequest struct {
	Model  string   `json:"model,omitempty"`
	Images []string `json:"images"`
}

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	k, err := s.authenticate(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var a answer
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/octet-stream" {
		a, err = s.runRaw(w, r, k)
		if err != nil {
			writeError(w, err)
			return
		}
		s.writeEmbeddings(w, r, a)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, err := s.idempotentContext(r, k, body)
	if err != nil {
		writeError(w, err)
		return
	}
	images, err := s.parseEmbeddings(r, body)
	if err != nil {
		writeError(w, err)
		return
	}
	// Admit before decoding, so a key over its rate cannot make the server decode
	// (expensive) images; a request with a bad image keeps its rate tokens spent.
	var rs rateState
	if rs, err = s.adm.admit(k, len(images), isRepeat(ctx)); err == nil {
		var x infer.Images
		if x, err = s.spec.decodeImages(images); err != nil {
			s.adm.release(k, len(images), false, 0)
		} else {
			a, err = s.runAdmitted(ctx, k, x, rs)
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	s.writeEmbeddings(w, r, a)
}

// runRaw serves a raw float32 request: the shape header is checked and the key admitted
// (quota, rate, requests in flight) for its image count before a byte of the body is read,
// and the body is read up to exactly the size that shape needs. A request refused after
// admission (a bad body) keeps its rate tokens spent.
func (s *Server) runRaw(w http.ResponseWriter, r *http.Request, k Key) (answer, error) {
	shape, err := parseShapeHeader(r.Header.Get("X-Shape"))
	if err != nil {
		return answer{}, err
	}
	sh := make([]int64, len(shape))
	for i, v := range shape {
		sh[i] = int64(v)
	}
	n, err := s.spec.checkShape(sh)
	if err != nil {
		return answer{}, err
	}
	want := int64(4 * n * s.spec.C * s.spec.H * s.spec.W)
	if r.ContentLength >= 0 && r.ContentLength != want {
		return answer{}, badRequest("bad_length", "Content-Length %d: shape %v needs %d float32 values = %d bytes", r.ContentLength, shape, want/4, want)
	}
	id, err := s.idempotency(r, k)
	if err != nil {
		return answer{}, err
	}
	ctx := withIdem(r.Context(), id)
	rs, err := s.adm.admit(k, n, isRepeat(ctx))
	if err != nil {
		return answer{}, err
	}
	body, err := s.readBodyUpTo(w, r, want)
	var x infer.Images
	if err == nil {
		err = id.check(body)
	}
	if err == nil {
		x, err = s.spec.rawImages(shape, body)
	}
	if err != nil {
		s.adm.release(k, n, false, 0)
		return answer{}, err
	}
	return s.runAdmitted(ctx, k, x, rs)
}

// writeEmbeddings writes a /v1/embeddings answer: raw float32 when the caller accepts it,
// else JSON.
func (s *Server) writeEmbeddings(w http.ResponseWriter, r *http.Request, a answer) {
	a.setHeaders(w.Header())
	if acceptsRaw(r.Header.Get("Accept")) {
		out := floatsAsBytes(a.v.Data)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Shape", fmt.Sprintf("%d,%d", a.v.N, a.v.D))
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(http.StatusOK)
		w.Write(out)
		return
	}
	b := make([]byte, 0, 64+len(s.name)+a.v.N*a.v.D*12)
	b = append(b, `{"model":`...)
	b = strconv.AppendQuote(b, s.name)
	b = append(b, `,"dim":`...)
	b = strconv.AppendInt(b, int64(a.v.D), 10)
	b = append(b, `,"embeddings":[`...)
	for i := 0; i < a.v.N; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, f := range a.v.Row(i) {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
		}
		b = append(b, ']')
	}
	b = append(b, `],"usage":{"queries":`...)
	b = strconv.AppendInt(b, int64(a.v.N), 10)
	b = append(b, `,"used":`...)
	b = strconv.AppendInt(b, a.used, 10)
	if a.key.Quota > 0 {
		b = append(b, `,"remaining":`...)
		b = strconv.AppendInt(b, max(a.key.Quota-a.used, 0), 10)
	}
	b = append(b, "}}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// parseEmbeddings reads a JSON /v1/embeddings body: base64 images, returned undecoded with
// their number checked (raw float32 bodies are runRaw's, admitted before they are read).
func (s *Server) parseEmbeddings(r *http.Request, body []byte) (images []string, err error) {
	ct := r.Header.Get("Content-Type")
	mt := "application/json"
	if ct != "" {
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, errorf(http.StatusUnsupportedMediaType, "bad_content_type", "Content-Type %q: %v", ct, err)
		}
	}
	switch mt {
	case "application/json":
		var req embeddingsRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, badRequest("bad_json", `request body: %v; expected {"images": ["<base64 PNG or JPEG>", ...]}`, jsonErr(err))
		}
		if dec.More() {
			return nil, badRequest("bad_json", "request body: data after the JSON object")
		}
		if req.Model != "" && req.Model != s.name {
			return nil, errorf(http.StatusNotFound, "unknown_model", "model %q not found: this server serves %q", req.Model, s.name)
		}
		if err := s.spec.checkCount(len(req.Images)); err != nil {
			return nil, err
		}
		return req.Images, nil
	}
	return nil, errorf(http.StatusUnsupportedMediaType, "bad_content_type",
		"Content-Type %q: expected application/json (base64 images) or application/octet-stream (float32 NCHW with X-Shape)", mt)
}

func acceptsRaw(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "application/octet-stream" {
			return true
		}
	}
	return false
}

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	if err := s.modelFromPath(r); err != nil {
		writeError(w, err)
		return
	}
	k, err := s.authenticate(r)
	if err != nil {
		writeError(w, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, err := s.idempotentContext(r, k, body)
	if err != nil {
		writeError(w, err)
		return
	}
	x, id, err := s.spec.parseInfer(body, s.info.InputName, s.info.OutputName)
	if err != nil {
		writeError(w, err)
		return
	}
	a, err := s.run(ctx, k, x)
	if err != nil {
		writeError(w, err)
		return
	}
	a.setHeaders(w.Header())
	writeJSON(w, http.StatusOK, InferResponse{
		ModelName: s.name, ModelVersion: "1", ID: id,
		Outputs: []InferOutput{{Name: s.info.OutputName, Shape: []int64{int64(a.v.N), int64(a.v.D)}, Datatype: "FP32", Data: a.v.Data}},
	})
}

// forgetBilled deletes expired idempotency records now and every period until Close.
func (s *Server) forgetBilled(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		if n, err := s.store.ForgetBilled(context.Background()); err != nil {
			s.log.Warn("idempotency clean-up failed", "err", err)
		} else if n > 0 {
			s.log.Info("forgot expired idempotency keys", "records", n)
		}
		select {
		case <-s.stopForget:
			return
		case <-t.C:
		}
	}
}

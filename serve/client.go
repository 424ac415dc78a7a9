package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// Client is a remote encoder: it implements infer.Encoder by calling a server's
// /v1/embeddings with raw float32 tensors, or, when dialled with a model URL
// (".../v2/models/<name>"), the Open Inference Protocol v2 infer endpoint with JSON tensors
// (so it also talks to Triton or KServe). An attacker (or an evaluation) uses a remote victim
// exactly like a local ONNX file. It is goroutine-safe.
type Client struct {
	// MaxRetries bounds how often one request is retried after 429/503 with Retry-After
	// (default 5). MaxWait caps a single wait (default 60 s); a longer Retry-After fails.
	MaxRetries int
	MaxWait    time.Duration
	// BatchLimit is the most images per request; larger batches are split (default: the
	// server's max_images, else 256).
	BatchLimit int

	base   *url.URL
	model  string
	apiKey string
	hc     *http.Client
	v2     bool // Open Inference Protocol v2 instead of /v1/embeddings
	info   infer.Info
	dim    int

	mu    sync.Mutex
	usage Usage
}

// Usage is the caller's quota state reported by the server's last reply.
type Usage struct {
	Used      int64 // images answered to this key so far
	Limit     int64 // the key's quota, 0 when unlimited
	Remaining int64 // -1 when unlimited
	Retries   int   // 429/503 retries done by this client so far
}

// Dial connects to a server. rawURL is the server's base URL ("http://127.0.0.1:8700"),
// whose single model is discovered through /v1/models and queried through /v1/embeddings, or
// a model URL ("http://host:8700/v2/models/victim"), queried through the v2 infer endpoint.
// Info comes from the v2 model metadata.
func Dial(rawURL, apiKey string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(rawURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dial %q: expected an http(s) URL such as http://127.0.0.1:8700", rawURL)
	}
	c := &Client{MaxRetries: 5, MaxWait: time.Minute, apiKey: apiKey, hc: newHTTPClient()}
	if i := strings.Index(u.Path, "/v2/models/"); i >= 0 {
		c.model = strings.SplitN(u.Path[i+len("/v2/models/"):], "/", 2)[0]
		u.Path = u.Path[:i]
		c.v2 = true
	}
	c.base = u
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c.model == "" {
		var list struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := c.getJSON(ctx, "/v1/models", &list); err != nil {
			return nil, fmt.Errorf("dial %s: %w", rawURL, err)
		}
		if len(list.Data) != 1 {
			return nil, fmt.Errorf("dial %s: the server lists %d models; name one with %s/v2/models/<name>", rawURL, len(list.Data), rawURL)
		}
		c.model = list.Data[0].ID
	}
	var md ModelMetadata
	if err := c.getJSON(ctx, "/v2/models/"+url.PathEscape(c.model), &md); err != nil {
		return nil, fmt.Errorf("dial %s: %w", rawURL, err)
	}
	if len(md.Inputs) != 1 || len(md.Outputs) != 1 || len(md.Inputs[0].Shape) != 4 || len(md.Outputs[0].Shape) != 2 {
		return nil, fmt.Errorf("dial %s: model %q metadata: expected one NCHW input and one [N, D] output, found inputs %v outputs %v", rawURL, c.model, md.Inputs, md.Outputs)
	}
	c.info = infer.Info{
		InputName: md.Inputs[0].Name, OutputName: md.Outputs[0].Name,
		InputShape: append([]int64(nil), md.Inputs[0].Shape...), OutputDim: int(md.Outputs[0].Shape[1]),
		Metadata: map[string]string{"remote": c.base.String() + "/v2/models/" + c.model},
	}
	if n, ok := md.Parameters["normalization"].(string); ok {
		c.info.Metadata["normalization"] = n
	}
	if n, ok := md.Parameters["max_images"].(float64); ok && n >= 1 {
		c.BatchLimit = int(n)
	}
	c.dim = c.info.OutputDim
	return c, nil
}

// newHTTPClient keeps enough idle connections for many goroutines sharing one Client (the
// default transport keeps 2 per host, so concurrent callers would reconnect per request).
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 512
	tr.MaxIdleConnsPerHost = 256
	return &http.Client{Timeout: 10 * time.Minute, Transport: tr}
}

// Info describes the remote model (from its v2 metadata). Metadata["remote"] is its URL.
func (c *Client) Info() infer.Info { return c.info }

// Protocol says how the client queries the server: "v1 raw float32" (/v1/embeddings) or
// "v2 JSON" (Open Inference Protocol v2 infer endpoint).
func (c *Client) Protocol() string {
	if c.v2 {
		return "v2 JSON"
	}
	return "v1 raw float32"
}

// Model is the remote model's name.
func (c *Client) Model() string { return c.model }

// Usage returns the quota state reported by the last successful reply.
func (c *Client) Usage() Usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.usage
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// RemoteError is an error answered by the server.
type RemoteError struct {
	Status  int    // HTTP status
	Code    string // the server's error code, e.g. "quota_exhausted"
	Message string
}

// HTTPStatus is the server's status code (4xx: the server refused; 5xx: it failed).
func (e *RemoteError) HTTPStatus() int { return e.Status }

func (e *RemoteError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Encode sends x to the server (split into requests of at most BatchLimit images) and
// returns the representations. When a request fails after earlier ones were answered (and
// billed), it returns those answers with an *infer.PartialError saying how many they are.
func (c *Client) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	if err := x.Validate(); err != nil {
		return infer.Vectors{}, err
	}
	if s := c.info.InputShape; x.C != int(s[1]) || x.H != int(s[2]) || x.W != int(s[3]) {
		return infer.Vectors{}, fmt.Errorf("remote model %q takes C,H,W = %d,%d,%d, got %d,%d,%d", c.model, s[1], s[2], s[3], x.C, x.H, x.W)
	}
	limit := c.BatchLimit
	if limit <= 0 {
		limit = DefaultMaxImages
	}
	per := x.C * x.H * x.W
	out := infer.Vectors{N: x.N, D: c.dim}
	for lo := 0; lo < x.N; lo += limit {
		hi := min(lo+limit, x.N)
		part := infer.Images{N: hi - lo, C: x.C, H: x.H, W: x.W, Data: x.Data[lo*per : hi*per]}
		idem := ""
		if keys := infer.RequestKeysFrom(ctx); keys != nil {
			idem = keys(lo, hi)
		}
		v, err := c.encodeOnce(ctx, part, idem)
		if err != nil {
			err = fmt.Errorf("images %d-%d: %w", lo, hi-1, err)
			if lo == 0 {
				return infer.Vectors{}, err
			}
			// The earlier requests were answered and billed: hand them back with the error.
			out.N = lo
			return out, &infer.PartialError{Answered: lo, Err: err}
		}
		if out.D == 0 {
			out.D = v.D
		}
		if v.D != out.D {
			return infer.Vectors{}, fmt.Errorf("images %d-%d: the server answered dimension %d, expected %d", lo, hi-1, v.D, out.D)
		}
		if out.Data == nil {
			out.Data = make([]float32, 0, x.N*out.D)
		}
		out.Data = append(out.Data, v.Data...)
	}
	if out.Data == nil {
		out.Data = []float32{}
	}
	return out, nil
}

// request is one prepared HTTP request body and how to read its answer.
type request struct {
	path, contentType string
	body              []byte
	parse             func(h http.Header, b []byte) (infer.Vectors, error)
}

func (c *Client) newRequest(x infer.Images) (request, error) {
	if c.v2 {
		b, err := json.Marshal(InferRequest{
			Inputs:  []InferTensor{{Name: c.info.InputName, Shape: []int64{int64(x.N), int64(x.C), int64(x.H), int64(x.W)}, Datatype: "FP32", Data: floatsJSON(x.Data)}},
			Outputs: []map[string]any{{"name": c.info.OutputName}},
		})
		return request{path: "/v2/models/" + url.PathEscape(c.model) + "/infer", contentType: "application/json", body: b,
			parse: func(_ http.Header, b []byte) (infer.Vectors, error) {
				return parseInferReply(b, c.info.OutputName, x.N)
			}}, err
	}
	body := floatsAsBytes(x.Data) // x.Data's own memory, read while Encode runs
	return request{path: "/v1/embeddings", contentType: "application/octet-stream", body: body,
		parse: func(h http.Header, b []byte) (infer.Vectors, error) { return parseRawReply(h.Get("X-Shape"), b, x.N) }}, nil
}

// floatsJSON writes a flat JSON array of float32 values (shortest form that reads back exactly).
func floatsJSON(v []float32) json.RawMessage {
	b := make([]byte, 0, 12*len(v)+2)
	b = append(b, '[')
	for i, f := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
	}
	return append(b, ']')
}

// parseInferReply reads a v2 inference response holding output name as an FP32 [n, D] tensor.
func parseInferReply(b []byte, name string, n int) (infer.Vectors, error) {
	var r InferResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return infer.Vectors{}, fmt.Errorf("v2 reply: %w", err)
	}
	for _, o := range r.Outputs {
		if o.Name != name && len(r.Outputs) > 1 {
			continue
		}
		if len(o.Shape) != 2 || o.Shape[0] != int64(n) || o.Shape[1] <= 0 || int64(len(o.Data)) != o.Shape[0]*o.Shape[1] {
			return infer.Vectors{}, fmt.Errorf("v2 reply output %q: shape %v with %d values, expected [%d, D]", o.Name, o.Shape, len(o.Data), n)
		}
		return infer.Vectors{N: n, D: int(o.Shape[1]), Data: o.Data}, nil
	}
	return infer.Vectors{}, fmt.Errorf("v2 reply has no output %q", name)
}

func (c *Client) encodeOnce(ctx context.Context, x infer.Images, idem string) (infer.Vectors, error) {
	r, err := c.newRequest(x)
	if err != nil {
		return infer.Vectors{}, err
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+r.path, bytes.NewReader(r.body))
		if err != nil {
			return infer.Vectors{}, err
		}
		req.Header.Set("Content-Type", r.contentType)
		if !c.v2 {
			req.Header.Set("Accept", "application/octet-stream")
			req.Header.Set("X-Shape", fmt.Sprintf("%d,%d,%d,%d", x.N, x.C, x.H, x.W))
		}
		if c.apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+c.apiKey)
		}
		if idem != "" {
			req.Header.Set(IdempotencyHeader, idem)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return infer.Vectors{}, err
		}
		b, err := readReply(resp, c.replyLimit(x.N))
		resp.Body.Close()
		if err != nil {
			return infer.Vectors{}, fmt.Errorf("reading the reply: %w", err)
		}
		if resp.StatusCode == http.StatusOK {
			c.noteUsage(resp.Header)
			return r.parse(resp.Header, b)
		}
		rerr := remoteError(resp.StatusCode, b)
		if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
			return infer.Vectors{}, rerr
		}
		wait, ok := retryAfter(resp.Header.Get("Retry-After"))
		if !ok {
			return infer.Vectors{}, rerr
		}
		// Retry-After has whole seconds; this server also says the exact wait.
		var precise struct {
			RetryAfter float64 `json:"retry_after_seconds"`
		}
		if json.Unmarshal(b, &precise) == nil && precise.RetryAfter > 0 && precise.RetryAfter < wait.Seconds() {
			wait = time.Duration(precise.RetryAfter*float64(time.Second)) + 5*time.Millisecond
		}
		if attempt >= c.MaxRetries {
			return infer.Vectors{}, fmt.Errorf("gave up after %d retries: %w", attempt, rerr)
		}
		if c.MaxWait > 0 && wait > c.MaxWait {
			return infer.Vectors{}, fmt.Errorf("server asks to wait %v, more than MaxWait %v: %w", wait, c.MaxWait, rerr)
		}
		c.mu.Lock()
		c.usage.Retries++
		c.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return infer.Vectors{}, ctx.Err()
		case <-t.C:
		}
	}
}

// replyLimit is the most bytes a reply to n images may have: the vectors as JSON text (at
// most 40 bytes a value) plus 1 MiB of envelope. A server cannot make the client allocate
// more than its answer needs.
func (c *Client) replyLimit(n int) int64 {
	dim := int64(c.dim)
	if dim <= 0 {
		dim = 1 << 16
	}
	return int64(n)*dim*40 + 1<<20
}

// readReply reads a reply body of at most limit bytes, in one buffer of its announced length
// when there is one.
func readReply(resp *http.Response, limit int64) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("the server announces a reply of %d bytes, more than the %d this request's answer can need", resp.ContentLength, limit)
	}
	if resp.ContentLength <= 0 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err == nil && int64(len(b)) > limit {
			err = fmt.Errorf("the server's reply exceeds the %d bytes this request's answer can need", limit)
		}
		return b, err
	}
	b := make([]byte, resp.ContentLength)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (c *Client) noteUsage(h http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.usage.Used, _ = strconv.ParseInt(h.Get("X-Quota-Used"), 10, 64)
	c.usage.Limit, _ = strconv.ParseInt(h.Get("X-Quota-Limit"), 10, 64)
	c.usage.Remaining = -1
	if v, err := strconv.ParseInt(h.Get("X-Quota-Remaining"), 10, 64); err == nil {
		c.usage.Remaining = v
	}
}

// parseRawReply reads an X-Shape: N,D little-endian float32 reply.
func parseRawReply(shape string, b []byte, n int) (infer.Vectors, error) {
	var rn, d int
	if _, err := fmt.Sscanf(shape, "%d,%d", &rn, &d); err != nil || rn != n || d <= 0 {
		return infer.Vectors{}, fmt.Errorf("reply X-Shape %q: expected %d,<dim>", shape, n)
	}
	if len(b) != 4*rn*d {
		return infer.Vectors{}, fmt.Errorf("reply of %d bytes: X-Shape %s needs %d", len(b), shape, 4*rn*d)
	}
	return infer.Vectors{N: rn, D: d, Data: bytesAsFloats(b)}, nil
}

func remoteError(status int, body []byte) *RemoteError {
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(body))
		if len(e.Error) > 200 {
			e.Error = e.Error[:200] + "..."
		}
	}
	return &RemoteError{Status: status, Code: e.Code, Message: e.Error}
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 && !math.IsInf(s, 0) {
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return err
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %w", path, remoteError(resp.StatusCode, b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

var _ infer.Encoder = (*Client)(nil)

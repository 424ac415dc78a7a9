// Package serve sells an encoder's representations over HTTP, the way a provider would
// run a paid embedding API, and offers the remote client an attacker uses against it.
//
// Server (New) serves one infer.Encoder (typically an ONNX Runtime model, possibly wrapped
// by defenses) with:
//
//   - POST /v1/embeddings: JSON {"images": [base64 PNG/JPEG ...]} or a raw float32 NCHW
//     tensor (Content-Type: application/octet-stream, X-Shape: N,C,H,W); JSON reply, or raw
//     float32 with X-Shape: N,D when the request says Accept: application/octet-stream.
//   - the Open Inference Protocol v2 (KServe, Triton): /v2/health/{live,ready},
//     /v2/models/{name}[/ready], POST /v2/models/{name}/infer.
//   - GET /metrics (Prometheus), GET /healthz, GET /v1/models.
//
// Callers authenticate with API keys (Authorization: Bearer <secret>) held in a Store,
// which also keeps the ledger of answered images per key per day. Each key has a quota
// (total images, 402 when exhausted) and a rate (images per second, 429 with Retry-After).
//
// # Ledger guarantee
//
// An image is counted if and only if it was answered: its quota is reserved in memory
// before the model runs, its count is committed (one SQLite transaction, durable on
// return) after the model answered and before a single byte of the reply is written, and
// the reservation is dropped (refunded) if anything fails first. Hence, after a kill -9 at
// any instant and a restart on the same database:
//
//	received <= counted <= received + in-flight
//
// where received is the number of images whose replies the clients fully read, counted is
// the ledger total, and in-flight is the number of images of requests that were sent but
// not answered when the process died (at most one request per client connection). Exact
// equality as seen by the client is impossible over HTTP: the commit must precede the
// reply (otherwise a crash between reply and commit would give away unbilled answers),
// and a reply can always be lost after its commit: the process dies while writing it, or
// the network drops it. No protocol without client acknowledgements can close that gap,
// and acknowledgements would move the gap to the acknowledgement instead.
//
// # Errors and limits
//
// Every error is a JSON body {"error": "<what is wrong, expected vs found>", "code":
// "<machine-readable>"} with a 4xx status for bad input (400 malformed, 401 missing,
// invalid or revoked key, 404 unknown model or path, 405 wrong method, 413 body or
// image count over the limit, 415 content type, 402 quota exhausted, 429 rate limited);
// 5xx only for server faults (503 while shutting down). Rate-limit replies carry
// Retry-After (whole seconds, rounded up) and X-RateLimit-Limit (images/s), -Remaining
// (images that may be sent now) and -Reset (seconds until the bucket is full); the JSON
// body also has the exact retry_after_seconds. Successful replies carry X-Quota-Used and,
// for keys with a quota, X-Quota-Limit and X-Quota-Remaining.
//
// Concurrent requests of the same key are coalesced into one Encode call (dynamic
// batching, see Config.MaxBatch and MaxDelay); requests of different keys never share a
// call, because defenses keep per-caller state and read the key from the Encode context
// (defense.WithKey).
//
// Client (Dial) implements infer.Encoder over the API, retrying 429/503 replies after
// their Retry-After, so a remote victim can be used like a local ONNX file.
package serve

package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

// DialUpstream connects to a remote encoder for gateway mode: serve with its own keys,
// quotas, ledger, defenses and batching in front of any Open Inference Protocol v2 server
// (Triton, KServe, another ssl-onnx serve). rawURL names the model
// (http://host:port/v2/models/NAME) or, for an ssl-onnx server, its base URL; apiKey is the
// gateway's own key at the upstream, if it needs one. It returns the encoder and the
// upstream's name for the model.
//
// The upstream's failures are the gateway's, not the caller's: they become 502
// upstream_failed (logged, never billed), except an upstream's 422 (the caller's input made
// the model's output non-finite), which stays a 422.
func DialUpstream(rawURL, apiKey string) (infer.Encoder, string, error) {
	c, err := Dial(rawURL, apiKey)
	if err != nil {
		return nil, "", fmt.Errorf("upstream: %w", err)
	}
	return &upstream{c}, c.Model(), nil
}

type upstream struct{ *Client }

func (u *upstream) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	v, err := u.Client.Encode(ctx, x)
	if err == nil || ctx.Err() != nil {
		return v, err
	}
	var re *RemoteError
	if errors.As(err, &re) && re.Status == http.StatusUnprocessableEntity {
		return infer.Vectors{}, errorf(http.StatusUnprocessableEntity, "non_finite_output", "the model server refused the input: %s", re.Message)
	}
	return infer.Vectors{}, &upstreamError{err}
}

// upstreamError is an upstream failure: the server's log gets its cause, the caller a 502
// without it (it may name the upstream's address or its key's state).
type upstreamError struct{ cause error }

func (e *upstreamError) Error() string { return "upstream: " + e.cause.Error() }
func (e *upstreamError) Unwrap() error { return e.cause }

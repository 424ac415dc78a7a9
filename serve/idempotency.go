package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net/http"
)

// idemReq is a request's Idempotency-Key and what the store knows of it. A key billed before
// (with the same body) is answered again and not billed; with another body it is refused
// with 409. The bill and the record of the key are written in one transaction, so a retry
// after a crash or a lost reply never pays twice.
type idemReq struct {
	key    string
	prev   []byte // the body hash it was billed under (repeat)
	repeat bool
	hash   []byte // this request's body hash (set by check)
}

type idemCtxKey struct{}

// IdempotencyHeader is the request header naming a request for retries.
const IdempotencyHeader = "Idempotency-Key"

// idempotency reads the request's Idempotency-Key (nil without one) and whether the key
// already billed it.
func (s *Server) idempotency(r *http.Request, k Key) (*idemReq, error) {
	v := r.Header.Get(IdempotencyHeader)
	if v == "" {
		return nil, nil
	}
	if len(v) > 255 {
		return nil, badRequest("bad_idempotency_key", "%s of %d characters: expected 1 to 255 printable ASCII characters", IdempotencyHeader, len(v))
	}
	for _, c := range []byte(v) {
		if c < 0x21 || c > 0x7e {
			return nil, badRequest("bad_idempotency_key", "%s: expected 1 to 255 printable ASCII characters, found byte 0x%02x", IdempotencyHeader, c)
		}
	}
	prev, found, err := s.store.Billed(r.Context(), k.ID, v)
	if err != nil {
		return nil, err
	}
	return &idemReq{key: v, prev: prev, repeat: found}, nil
}

// check hashes the body and refuses a repeat whose body differs from the billed one.
func (id *idemReq) check(body []byte) error {
	if id == nil {
		return nil
	}
	h := sha256.Sum256(body)
	id.hash = h[:]
	if id.repeat && !bytes.Equal(id.prev, id.hash) {
		return id.conflict()
	}
	return nil
}

func (id *idemReq) conflict() error {
	return errorf(http.StatusConflict, "idempotency_conflict",
		"%s %q was already used for a request with another body: send a new key with a new request", IdempotencyHeader, id.key)
}

func withIdem(ctx context.Context, id *idemReq) context.Context {
	if id == nil {
		return ctx
	}
	return context.WithValue(ctx, idemCtxKey{}, id)
}

func idemOf(ctx context.Context) *idemReq {
	id, _ := ctx.Value(idemCtxKey{}).(*idemReq)
	return id
}

// idempotentContext checks a request whose body was read whole against its Idempotency-Key
// and returns the context that carries the key to billing.
func (s *Server) idempotentContext(r *http.Request, k Key, body []byte) (context.Context, error) {
	id, err := s.idempotency(r, k)
	if err == nil {
		err = id.check(body)
	}
	return withIdem(r.Context(), id), err
}

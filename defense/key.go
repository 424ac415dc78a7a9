// Package defense holds defenses of a victim encoder against extraction. Each defense wraps
// an infer.Encoder (like HTTP middleware wraps an http.Handler), so defenses compose in any
// order and the server only ever serves "an encoder". A defense that keeps per-caller state
// reads the caller's API key from the request context (see WithKey).
package defense

import "context"

type keyCtx struct{}

// WithKey returns a context carrying the caller's identity (an API key ID, not the secret).
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

// KeyFrom returns the caller identity stored by WithKey, or "" for an anonymous caller.
func KeyFrom(ctx context.Context) string {
	k, _ := ctx.Value(keyCtx{}).(string)
	return k
}

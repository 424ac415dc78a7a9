package study

import (
	"context"
	"errors"
	"fmt"

	"github.com/ssl-onnx/ssl-onnx/attack"
	"github.com/ssl-onnx/ssl-onnx/infer"
)

// quotaClient is one of the sybil attacker's keys and the images it may still ask.
type quotaClient struct {
	enc  infer.Encoder
	left int
}

// sybil is the attacker who splits one budget over several keys (as the B4B paper's sybil
// attack does against per-key defenses): each request goes to the next key with quota left,
// a batch larger than that key's quota spills over to the next, and a key the API refuses
// (blocked) is dropped while the others go on. Only when every key is refused or spent does
// Encode fail, with the last refusal.
type sybil struct {
	clients []quotaClient
	next    int
	refusal error // the last refusal of any key
}

// spent is the sybil attacker's own refusal when every key's quota is used up (as the API's
// 402 would be).
type spent struct{}

func (spent) Error() string   { return "every sybil key's quota is spent" }
func (spent) HTTPStatus() int { return 402 }

var errSpent error = spent{}

func (s *sybil) Info() infer.Info { return s.clients[0].enc.Info() }
func (s *sybil) Close() error     { return nil } // the clients belong to the caller

func (s *sybil) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	per := x.C * x.H * x.W
	var out infer.Vectors
	for done := 0; done < x.N; {
		k := s.pick()
		if k < 0 {
			err := s.refusal
			if err == nil {
				err = errSpent
			}
			err = fmt.Errorf("sybil attacker, after %d of %d images: %w", done, x.N, err)
			if done > 0 { // answered and billed through other keys: hand them back
				return out, &infer.PartialError{Answered: done, Err: err}
			}
			return out, err
		}
		c := &s.clients[k]
		n := min(c.left, x.N-done)
		sub := ctx
		if keys := infer.RequestKeysFrom(ctx); keys != nil { // name the part by its place in x
			off := done
			sub = infer.WithRequestKeys(ctx, func(lo, hi int) string { return keys(off+lo, off+hi) })
		}
		v, err := c.enc.Encode(sub, infer.Images{N: n, C: x.C, H: x.H, W: x.W, Data: x.Data[done*per : (done+n)*per]})
		if pe := (*infer.PartialError)(nil); errors.As(err, &pe) && pe.Answered > 0 && v.N >= pe.Answered {
			c.left -= pe.Answered // paid for: keep them
			done += pe.Answered
			out.N, out.D = out.N+pe.Answered, v.D
			out.Data = append(out.Data, v.Data[:pe.Answered*v.D]...)
		}
		if attack.IsRefusal(err) {
			c.left, s.refusal = 0, err // a blocked or exhausted key: go on with the others
			continue
		}
		if err != nil {
			return out, err
		}
		c.left -= n
		done += n
		out.N, out.D = out.N+v.N, v.D
		out.Data = append(out.Data, v.Data...)
	}
	return out, nil
}

// pick returns the next key (round robin) with quota left, or -1.
func (s *sybil) pick() int {
	for i := range s.clients {
		k := (s.next + i) % len(s.clients)
		if s.clients[k].left > 0 {
			s.next = k + 1
			return k
		}
	}
	return -1
}

var _ infer.Encoder = (*sybil)(nil)

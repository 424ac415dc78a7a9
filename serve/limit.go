package serve

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// admission enforces per-key quotas and rate limits in memory, on top of the Store.
//
// Quota: images of requests being answered are reserved here before the model runs and
// released after the Store has recorded them (or after a failure, which refunds them). The
// check adds the reservations to the key's used count: the larger of the count the request
// authenticated with (read from the Store) and the latest total this server committed
// (remembered at each release, so the check needs no database query under the mutex). A
// reservation is released only after its Record committed and the committed total is
// remembered in the same step, so the sum never under-counts: a key can never be answered
// beyond its quota. (One server process per database: another writer's counts would only
// be seen through the authenticated count.)
//
// Rate: a token bucket per key holding up to max(rate, 1) images, refilled at rate images
// per second. A request of n images is admitted when the bucket holds min(n, capacity)
// tokens and then takes n, possibly going negative: a request larger than one second of
// rate is served, and the key then waits until the debt is repaid, so the long-run rate
// still never exceeds rate.
type admission struct {
	now func() time.Time

	mu       sync.Mutex
	reserved map[string]int64 // images admitted and not yet released, per key
	inflight map[string]int   // requests admitted and not yet released, per key
	maxReqs  int              // most requests of one key in flight (0 = no limit)
	used     map[string]int64 // the largest used total a release has reported, per key
	buckets  map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newAdmission() *admission {
	return &admission{now: time.Now, reserved: map[string]int64{}, inflight: map[string]int{}, used: map[string]int64{}, buckets: map[string]*bucket{}}
}

// rateState is what the X-RateLimit-* headers report.
type rateState struct {
	limit     float64 // images per second, 0 = unlimited
	remaining float64 // tokens left after this request
	reset     time.Duration
	retry     time.Duration // when refused: how long until the request would be admitted
}

func (r rateState) setHeaders(h http.Header) {
	if r.limit <= 0 {
		return
	}
	h.Set("X-RateLimit-Limit", strconv.FormatFloat(r.limit, 'g', -1, 64))
	h.Set("X-RateLimit-Remaining", strconv.FormatInt(int64(math.Max(0, math.Floor(r.remaining))), 10))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(int64(math.Ceil(r.reset.Seconds())), 10))
}

// admit reserves n images of k's quota and takes n tokens of its rate (quotaFree: a repeat
// of a billed Idempotency-Key, which costs compute but no quota). On success the caller must
// call release once the images are recorded or refused.
func (a *admission) admit(k Key, n int, quotaFree bool) (rateState, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	quota, used := k.Quota, max(k.Used, a.used[k.ID])
	if quota > 0 && !quotaFree && used+a.reserved[k.ID]+int64(n) > quota {
		inflight := a.reserved[k.ID]
		msg := fmt.Sprintf("quota exhausted for key %q: %d of %d images used", k.Name, used, quota)
		if inflight > 0 {
			msg += fmt.Sprintf(" and %d in flight", inflight)
		}
		msg += fmt.Sprintf(", this request needs %d", n)
		return rateState{}, &apiError{status: http.StatusPaymentRequired, code: "quota_exhausted", msg: msg,
			extra: map[string]any{"quota": quota, "used": used, "requested": n}}
	}
	if a.maxReqs > 0 && a.inflight[k.ID] >= a.maxReqs {
		e := &apiError{status: http.StatusTooManyRequests, code: "too_many_in_flight",
			msg:    fmt.Sprintf("key %q has %d requests in flight, the limit is %d: wait for an answer before sending more", k.Name, a.inflight[k.ID], a.maxReqs),
			header: http.Header{"Retry-After": {"1"}}}
		return rateState{}, e
	}
	rs := rateState{limit: k.Rate}
	if k.Rate > 0 {
		now := a.now()
		capacity := math.Max(k.Rate, 1)
		b := a.buckets[k.ID]
		if b == nil {
			b = &bucket{tokens: capacity, last: now}
			a.buckets[k.ID] = b
		}
		if dt := now.Sub(b.last).Seconds(); dt > 0 {
			b.tokens = math.Min(capacity, b.tokens+dt*k.Rate)
		}
		b.last = now
		b.tokens = math.Min(b.tokens, capacity) // the rate may have been lowered
		need := math.Min(float64(n), capacity)
		if b.tokens < need {
			rs.remaining = b.tokens
			rs.retry = seconds(math.Min(maxWait, (need-b.tokens)/k.Rate))
			rs.reset = seconds(math.Min(maxWait, (capacity-b.tokens)/k.Rate))
			e := &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
				msg: fmt.Sprintf("rate limit of key %q: %g images/s; this request of %d images may be sent in %.3f s",
					k.Name, k.Rate, n, rs.retry.Seconds()),
				extra:  map[string]any{"rate": k.Rate, "retry_after_seconds": rs.retry.Seconds()},
				header: http.Header{},
			}
			e.header.Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(rs.retry.Seconds()))), 10))
			rs.setHeaders(e.header)
			return rs, e
		}
		b.tokens -= float64(n)
		rs.remaining = b.tokens
		rs.reset = seconds(math.Min(maxWait, (capacity-b.tokens)/k.Rate))
	}
	a.reserved[k.ID] += int64(n)
	a.inflight[k.ID]++
	return rs, nil
}

// release ends a reservation made by admit. It must come after the images were recorded
// in the Store (usedAfter: the key's used total the Store reported, 0 when nothing was
// recorded), or after the request failed; refund also gives back the rate tokens.
func (a *admission) release(k Key, n int, refund bool, usedAfter int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reserved[k.ID] -= int64(n); a.reserved[k.ID] <= 0 {
		delete(a.reserved, k.ID)
	}
	if a.inflight[k.ID]--; a.inflight[k.ID] <= 0 {
		delete(a.inflight, k.ID)
	}
	if usedAfter > a.used[k.ID] {
		a.used[k.ID] = usedAfter
	}
	if refund && k.Rate > 0 {
		if b := a.buckets[k.ID]; b != nil {
			b.tokens = math.Min(math.Max(k.Rate, 1), b.tokens+float64(n))
		}
	}
}

// maxWait caps every wait told to a caller at a day (the slowest rate a key may have): a
// slower rate in an older database would overflow time.Duration into a small or negative wait.
const maxWait = 86400.0

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

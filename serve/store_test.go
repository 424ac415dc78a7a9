package serve

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStoreKeysAndLedger(t *testing.T) {
	eachBackend(t, func(t *testing.T, db string) {
		ctx := context.Background()
		st := openStore(t, db)
		alice, secret, err := st.AddKey(ctx, "alice", 10000, 50)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, SecretPrefix) || len(secret) != len(SecretPrefix)+43 || alice.Quota != 10000 || alice.Rate != 50 || !alice.Active() {
			t.Fatalf("key %+v secret %q", alice, secret)
		}
		for _, tc := range []struct {
			name  string
			quota int64
			rate  float64
			want  string
		}{
			{"alice", 1, 1, "already used by an active key"},
			{"", 1, 1, "key name"},
			{"bad name", 1, 1, "key name"},
			{"bob", -1, 1, "quota -1"},
			{"bob", 1, -2, "rate -2"},
		} {
			if _, _, err := st.AddKey(ctx, tc.name, tc.quota, tc.rate); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("AddKey(%q, %d, %g): %v, want error mentioning %q", tc.name, tc.quota, tc.rate, err, tc.want)
			}
		}
		got, err := st.Authenticate(ctx, secret)
		if err != nil || got.ID != alice.ID {
			t.Fatalf("Authenticate: %+v %v", got, err)
		}
		if _, err := st.Authenticate(ctx, secret+"x"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("wrong secret: %v", err)
		}
		// The ledger: per day, and used follows.
		day1 := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
		day2 := day1.Add(2 * time.Minute)
		for _, r := range []struct {
			images, requests int
			at               time.Time
			used             int64
		}{{3, 1, day1, 3}, {5, 2, day1, 8}, {1, 1, day2, 9}} {
			used, err := st.Record(ctx, alice.ID, r.images, r.requests, r.at)
			if err != nil || used != r.used {
				t.Fatalf("Record: %d %v, want %d", used, err, r.used)
			}
		}
		days, err := st.Usage(ctx, alice.ID)
		if err != nil || len(days) != 2 || days[0] != (DayUsage{alice.ID, "2026-03-01", 8, 3}) || days[1] != (DayUsage{alice.ID, "2026-03-02", 1, 1}) {
			t.Fatalf("usage %+v %v", days, err)
		}
		if _, err := st.Record(ctx, "k000", 1, 1, day1); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Record for an unknown key: %v", err)
		}
		// Revoke by name, then the name is free again; revoke by ID; twice is an error.
		rk, err := st.Revoke(ctx, "alice")
		if err != nil || rk.Active() || rk.Used != 9 {
			t.Fatalf("Revoke: %+v %v", rk, err)
		}
		if _, err := st.Authenticate(ctx, secret); !errors.Is(err, ErrRevokedKey) || !strings.Contains(err.Error(), `"alice" was revoked`) {
			t.Fatalf("revoked key: %v", err)
		}
		alice2, _, err := st.AddKey(ctx, "alice", 5, 0)
		if err != nil {
			t.Fatalf("re-adding a revoked name: %v", err)
		}
		if _, err := st.Revoke(ctx, alice.ID); err == nil || !strings.Contains(err.Error(), "already revoked") {
			t.Fatalf("second revoke: %v", err)
		}
		if _, err := st.Revoke(ctx, "nobody"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("revoke unknown: %v", err)
		}
		keys, err := st.Keys(ctx)
		if err != nil || len(keys) != 2 || keys[0].ID != alice.ID || keys[0].Active() || keys[1].ID != alice2.ID || !keys[1].Active() || keys[1].Remaining() != 5 {
			t.Fatalf("keys %+v %v", keys, err)
		}
		if _, err := OpenStore(""); err == nil {
			t.Fatal("OpenStore(\"\") succeeded")
		}
	})
}

// A key named like another key's id: revoking that string must not revoke both.
func TestRevokeAmbiguousRefusesBoth(t *testing.T) {
	eachBackend(t, func(t *testing.T, db string) {
		ctx := context.Background()
		st := openStore(t, db)
		a, _, err := st.AddKey(ctx, "alice", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := st.AddKey(ctx, a.ID, 0, 0) // a name equal to alice's id
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Revoke(ctx, a.ID); err == nil || !strings.Contains(err.Error(), "ambiguous") {
			t.Fatalf("revoke %q: %v, want an ambiguity error", a.ID, err)
		}
		for _, k := range []Key{a, b} {
			got, err := st.Key(ctx, k.ID)
			if err != nil || !got.Active() {
				t.Fatalf("key %s after the refused revoke: %+v %v, want active", k.ID, got, err)
			}
		}
		if k, err := st.Revoke(ctx, b.ID); err != nil || k.ID != b.ID {
			t.Fatalf("revoke by the unambiguous id: %+v %v", k, err)
		}
	})
}

func TestRateBounds(t *testing.T) {
	eachBackend(t, func(t *testing.T, db string) {
		ctx := context.Background()
		st := openStore(t, db)
		for _, r := range []float64{1e-12, -1, 2e9} {
			if _, _, err := st.AddKey(ctx, "k", 0, r); err == nil {
				t.Errorf("rate %g accepted", r)
			}
		}
		if _, _, err := st.AddKey(ctx, "slow", 0, MinRate); err != nil {
			t.Errorf("rate of one image a day: %v", err)
		}
	})
}

// The defenses' secret is random per database, kept across reopenings, and shared by every
// handle on the same file (replicas, restarts).
func TestDefenseSecret(t *testing.T) {
	ctx := context.Background()
	secret := func(path string) int64 {
		st, err := OpenStore(path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		v, err := st.DefenseSecret(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			one, other := be.fresh(t), be.fresh(t)
			a, b, c := secret(one), secret(one), secret(other)
			if a != b {
				t.Fatalf("secret changed on reopening: %d then %d", a, b)
			}
			if a == c || a == 1 || a == 0 {
				t.Fatalf("secrets %d and %d: want random, different per database", a, c)
			}
		})
	}
}

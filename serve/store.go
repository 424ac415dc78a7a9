package serve

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go
)

// Store is the server's durable state: API keys and the per-key ledger of answered queries.
//
// It is a SQLite database (modernc.org/sqlite, pure Go, no cgo) in WAL mode with
// synchronous=FULL. SQLite was chosen over bbolt for one operational reason: bbolt takes an
// exclusive file lock for the lifetime of a writer, so `ssl-onnx keys add/revoke` could not
// run while the server holds the database; SQLite lets several processes share the file
// (readers never block, writers take turns under busy_timeout), so keys are created, listed
// and revoked while the server runs, and the server sees the change on the next request
// because it reads the key row on every request. Both engines give the property the ledger
// needs: a transaction is on disk when Commit returns and a kill -9 at any instant leaves
// either all of a transaction or none of it.
//
// Secrets are stored as SHA-256 digests only. A secret is 32 bytes from crypto/rand
// (256 bits of entropy), so, unlike a human password, it cannot be guessed from its digest
// and needs no salt or slow hash (bcrypt/argon2 only help against low-entropy inputs); a
// plain digest also lets a request be authenticated by one indexed lookup. Whoever reads
// the database learns key names and usage but cannot call the API.
//
// The same Store runs on PostgreSQL (OpenStore("postgres://...")), for several server
// replicas on several machines: the queries are the same (dialect holds the schema and the
// placeholder syntax), and so are the guarantees, because each is a single guarded statement
// in the billing transaction (the quota) or a unique row inserted before billing (an
// Idempotency-Key), which hold under PostgreSQL's default READ COMMITTED isolation as they do
// under SQLite's one writer at a time.
//
// A Store is safe for concurrent use, and any number of servers may share one database: the
// quota is enforced by the billing transaction; reservations for requests in flight (which
// only refuse early what the bill would refuse) live in each server's memory.
type Store struct {
	db   *sql.DB
	d    dialect
	auth *sql.Stmt // Authenticate's query, parsed once (it runs on every request)
	file string    // the SQLite file, or the PostgreSQL URL without its password
	// window is the idempotency retention in nanoseconds (0 = the default).
	window atomic.Int64
}

// Key is one API key's record (never its secret).
type Key struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Quota   int64     `json:"quota"` // total images the key may have answered; 0 = unlimited
	Used    int64     `json:"used"`  // images answered so far (sum of the ledger)
	Rate    float64   `json:"rate"`  // images per second (token bucket); 0 = unlimited
	Created time.Time `json:"created"`
	Revoked time.Time `json:"revoked,omitzero"` // zero while the key is active
}

// Active reports whether the key has not been revoked.
func (k Key) Active() bool { return k.Revoked.IsZero() }

// Remaining is the number of images the key may still have answered, -1 when unlimited.
func (k Key) Remaining() int64 {
	if k.Quota <= 0 {
		return -1
	}
	return max(k.Quota-k.Used, 0)
}

// DayUsage is one row of the ledger: what one key had answered on one UTC day.
type DayUsage struct {
	KeyID    string `json:"key_id"`
	Day      string `json:"day"` // YYYY-MM-DD, UTC
	Images   int64  `json:"images"`
	Requests int64  `json:"requests"`
}

// Errors returned by Store methods; match them with errors.Is.
var (
	ErrUnknownKey = errors.New("unknown API key")
	ErrRevokedKey = errors.New("API key revoked")
)

// SecretPrefix starts every API key secret, so secrets are recognisable in logs and
// secret scanners.
const SecretPrefix = "sslk_"

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS api_keys (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	secret_sha256 BLOB NOT NULL UNIQUE,
	quota         INTEGER NOT NULL CHECK (quota >= 0),
	rate          REAL NOT NULL CHECK (rate >= 0),
	used          INTEGER NOT NULL DEFAULT 0,
	created_ms    INTEGER NOT NULL,
	revoked_ms    INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys(name) WHERE revoked_ms IS NULL;
CREATE TABLE IF NOT EXISTS idempotency (
	key_id      TEXT NOT NULL REFERENCES api_keys(id),
	idem        TEXT NOT NULL,
	body_sha256 BLOB NOT NULL,
	images      INTEGER NOT NULL,
	created_ms  INTEGER NOT NULL,
	PRIMARY KEY (key_id, idem)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secrets (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS usage_daily (
	key_id   TEXT NOT NULL REFERENCES api_keys(id),
	day      TEXT NOT NULL,
	images   INTEGER NOT NULL,
	requests INTEGER NOT NULL,
	PRIMARY KEY (key_id, day)
) WITHOUT ROWID;
`

// OpenStore opens the database at path, creating its tables if needed: a SQLite file
// (created with its parent directory), or a PostgreSQL database given as a URL
// (postgres://user:password@host:port/dbname?sslmode=...).
func OpenStore(path string) (*Store, error) {
	if isPostgresURL(path) {
		return openPostgres(path)
	}
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("store %s: the path may not contain '?' or '#'", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if _, err := db.Exec(sqliteSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return newStore(db, sqliteDialect, path)
}

// newStore finishes opening a database whose schema exists.
func newStore(db *sql.DB, d dialect, name string) (*Store, error) {
	// Keep as many connections idle as may be open: database/sql keeps 2 by default, and a
	// loaded server then opened and closed a connection (a file open and schema read) for
	// most requests.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(time.Minute)
	auth, err := db.Prepare(d.bind(`SELECT ` + keyColumns + ` FROM api_keys WHERE secret_sha256 = ?`))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	return &Store{db: db, d: d, auth: auth, file: name}, nil
}

// exec, query and queryRow run q (written with SQLite's ? and ?N placeholders) on the
// store's database or transaction in its dialect.
func (s *Store) exec(ctx context.Context, db execer, q string, args ...any) (sql.Result, error) {
	return db.ExecContext(ctx, s.d.bind(q), args...)
}

func (s *Store) queryRow(ctx context.Context, db execer, q string, args ...any) *sql.Row {
	return db.QueryRowContext(ctx, s.d.bind(q), args...)
}

// execer is a *sql.DB or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// Path is the database file (or the PostgreSQL URL without its password).
func (s *Store) Path() string { return s.file }

// Close closes the database.
func (s *Store) Close() error {
	s.auth.Close()
	return s.db.Close()
}

var keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// MinRate is the slowest rate a key may have: one image a day (a slower one would make every
// wait longer than any client keeps a connection, and its Retry-After meaningless).
const MinRate = 1.0 / 86400

// AddKey creates a key and returns its record and its secret. The secret is shown only
// here: the database keeps its SHA-256 digest. quota is the total number of images the key
// may have answered (0 = unlimited); rate is images per second (0 = unlimited).
func (s *Store) AddKey(ctx context.Context, name string, quota int64, rate float64) (Key, string, error) {
	if !keyName.MatchString(name) {
		return Key{}, "", fmt.Errorf("key name %q: expected 1-64 characters of letters, digits, '.', '_', '-', starting with a letter or digit", name)
	}
	if quota < 0 {
		return Key{}, "", fmt.Errorf("quota %d: expected >= 0 (0 = unlimited)", quota)
	}
	if !(rate >= 0) || rate > 1e9 || (rate > 0 && rate < MinRate) {
		return Key{}, "", fmt.Errorf("rate %g: expected 0 (unlimited) or %g to 1e9 images per second", rate, MinRate)
	}
	var raw [32]byte
	var id [6]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Key{}, "", err
	}
	if _, err := rand.Read(id[:]); err != nil {
		return Key{}, "", err
	}
	secret := SecretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(secret))
	k := Key{ID: "k" + hex.EncodeToString(id[:]), Name: name, Quota: quota, Rate: rate, Created: time.UnixMilli(time.Now().UnixMilli()).UTC()}
	_, err := s.exec(ctx, s.db, `INSERT INTO api_keys(id, name, secret_sha256, quota, rate, created_ms) VALUES(?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, sum[:], k.Quota, k.Rate, k.Created.UnixMilli())
	if err != nil {
		if isUniqueViolation(err) {
			return Key{}, "", fmt.Errorf("key name %q is already used by an active key (revoke it first)", name)
		}
		return Key{}, "", fmt.Errorf("add key: %w", err)
	}
	return k, secret, nil
}

const keyColumns = `id, name, quota, rate, used, created_ms, revoked_ms`

func scanKey(sc interface{ Scan(...any) error }) (Key, error) {
	var k Key
	var created int64
	var revoked sql.NullInt64
	if err := sc.Scan(&k.ID, &k.Name, &k.Quota, &k.Rate, &k.Used, &created, &revoked); err != nil {
		return Key{}, err
	}
	k.Created = time.UnixMilli(created).UTC()
	if revoked.Valid {
		k.Revoked = time.UnixMilli(revoked.Int64).UTC()
	}
	return k, nil
}

// Keys lists every key, revoked ones included, oldest first.
func (s *Store) Keys(ctx context.Context) ([]Key, error) {
	rows, err := s.db.QueryContext(ctx, s.d.bind(`SELECT `+keyColumns+` FROM api_keys ORDER BY created_ms, id`))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Key returns the key with the given ID, or ErrUnknownKey.
func (s *Store) Key(ctx context.Context, id string) (Key, error) {
	k, err := scanKey(s.queryRow(ctx, s.db, `SELECT `+keyColumns+` FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, fmt.Errorf("%w: no key with id %q", ErrUnknownKey, id)
	}
	return k, err
}

// Revoke revokes the key named by ref: a key ID, or the name of an active key. Revoking
// takes effect at the caller's next request, also in a running server. The key's ledger
// is kept.
func (s *Store) Revoke(ctx context.Context, ref string) (Key, error) {
	// A name may look like another key's id: then ref is ambiguous, and revoking both (or
	// guessing) would cut off a customer who did nothing.
	var byID, byName string
	err := s.queryRow(ctx, s.db, `SELECT
		(SELECT id FROM api_keys WHERE id = ?1 AND revoked_ms IS NULL),
		(SELECT id FROM api_keys WHERE name = ?1 AND revoked_ms IS NULL)`, ref).Scan(nullable(&byID), nullable(&byName))
	if err != nil {
		return Key{}, fmt.Errorf("revoke: %w", err)
	}
	if byID != "" && byName != "" && byID != byName {
		return Key{}, fmt.Errorf("revoke %q: ambiguous: it is the id of key %s and the name of key %s; revoke by the id of the one you mean", ref, byID, byName)
	}
	k, err := scanKey(s.queryRow(ctx, s.db,
		`UPDATE api_keys SET revoked_ms = ?1 WHERE revoked_ms IS NULL AND (id = ?2 OR name = ?2) RETURNING `+keyColumns,
		time.Now().UnixMilli(), ref))
	if errors.Is(err, sql.ErrNoRows) {
		if old, err2 := s.Key(ctx, ref); err2 == nil && !old.Active() {
			return old, fmt.Errorf("key %s (%s) was already revoked at %s", old.ID, old.Name, old.Revoked.Format(time.RFC3339))
		}
		return Key{}, fmt.Errorf("%w: no active key with id or name %q", ErrUnknownKey, ref)
	}
	return k, err
}

// HashSecret is the digest under which a secret is stored.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// Authenticate returns the key whose secret is secret. It fails with ErrUnknownKey or
// ErrRevokedKey (wrapped with the key's name) when the secret cannot be used.
func (s *Store) Authenticate(ctx context.Context, secret string) (Key, error) {
	k, err := scanKey(s.auth.QueryRowContext(ctx, HashSecret(secret)))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, ErrUnknownKey
	}
	if err != nil {
		return Key{}, err
	}
	if !k.Active() {
		return k, fmt.Errorf("%w: key %q was revoked at %s", ErrRevokedKey, k.Name, k.Revoked.Format(time.RFC3339))
	}
	return k, nil
}

// Record adds images answered in requests replies to the key's ledger (the day of at, UTC)
// and to its used total, in one transaction, and returns the new total. When Record
// returns nil the count is durable (synchronous=FULL); when it returns an error nothing
// was counted.
func (s *Store) Record(ctx context.Context, keyID string, images, requests int, at time.Time) (int64, error) {
	rec, err := s.RecordAll(ctx, []Entry{{KeyID: keyID, Images: images, Requests: requests}}, at)
	if err != nil {
		return 0, err
	}
	if rec[0].OverQuota {
		return rec[0].Used, fmt.Errorf("record %d images for key %q with %d used: %w", images, keyID, rec[0].Used, ErrOverQuota)
	}
	return rec[0].Used, nil
}

// Entry is one addition to the ledger.
type Entry struct {
	KeyID    string
	Images   int
	Requests int
	// Idem, when set, is the request's Idempotency-Key and BodyHash the SHA-256 of its body:
	// the entry is billed only if that key has not been billed before for this API key, and
	// the record of it is written in the same transaction as the bill.
	Idem     string
	BodyHash []byte
}

// Recorded is what RecordAll did with one entry: the key's used total after it, and whether
// it was refused because it would have taken the key past its quota (then nothing of it was
// recorded and Used is the key's total without it).
type Recorded struct {
	Used      int64
	OverQuota bool
	// Repeat: the entry's Idempotency-Key was already billed with the same body (a concurrent
	// or retried duplicate): nothing was billed now. Conflict: it was billed with another body.
	Repeat, Conflict bool
}

// RecordAll records every entry in one transaction (one fsync for many answers) and returns
// what became of each. The quota is enforced here, in the billing transaction, so that any
// number of servers on one database never bill a key past it: an entry that would exceed its
// key's quota is refused (OverQuota) and the others are recorded. An unknown key or a
// database error fails the whole transaction and records nothing.
func (s *Store) RecordAll(ctx context.Context, entries []Entry, at time.Time) ([]Recorded, error) {
	for _, e := range entries {
		if e.Images < 0 || e.Requests < 0 {
			return nil, fmt.Errorf("record: negative count %d images / %d requests", e.Images, e.Requests)
		}
	}
	// Rows are locked in one order (key, Idempotency-Key) by every server, so two billing
	// transactions on PostgreSQL wait for each other instead of deadlocking; a deadlock or
	// serialization failure the database reports anyway is retried.
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(strings.Compare(entries[a].KeyID, entries[b].KeyID), strings.Compare(entries[a].Idem, entries[b].Idem))
	})
	for attempt := 1; ; attempt++ {
		out, err := s.recordTx(ctx, entries, order, at)
		if err == nil || attempt == 5 || !s.d.retryable(err) {
			return out, err
		}
	}
}

// recordTx is one attempt of RecordAll, taking entries in the given order.
func (s *Store) recordTx(ctx context.Context, entries []Entry, order []int, at time.Time) ([]Recorded, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	defer tx.Rollback()
	day := at.UTC().Format(time.DateOnly)
	out := make([]Recorded, len(entries))
	for _, i := range order {
		if out[i], err = s.recordOne(ctx, tx, entries[i], day, at); err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("record: commit: %w", err)
	}
	return out, nil
}

// recordOne bills one entry inside tx. An entry with an Idempotency-Key first claims its
// idempotency row (the unique row is what stops two servers billing one key twice); an
// entry refused for its quota gives the claim back.
func (s *Store) recordOne(ctx context.Context, tx *sql.Tx, e Entry, day string, at time.Time) (Recorded, error) {
	var r Recorded
	if e.Idem != "" {
		// A record past the retention window no longer counts (the clean-up may lag).
		if _, err := s.exec(ctx, tx, `DELETE FROM idempotency WHERE key_id = ? AND idem = ? AND created_ms < ?`,
			e.KeyID, e.Idem, at.Add(-s.IdempotencyWindow()).UnixMilli()); err != nil {
			return r, err
		}
		res, err := s.exec(ctx, tx, `INSERT INTO idempotency(key_id, idem, body_sha256, images, created_ms) VALUES(?, ?, ?, ?, ?)
			ON CONFLICT(key_id, idem) DO NOTHING`, e.KeyID, e.Idem, e.BodyHash, e.Images, at.UnixMilli())
		if err != nil {
			return r, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 { // billed before (or by a concurrent server)
			var prev []byte
			if err == nil {
				err = s.queryRow(ctx, tx, `SELECT body_sha256 FROM idempotency WHERE key_id = ? AND idem = ?`, e.KeyID, e.Idem).Scan(&prev)
			}
			if err == nil {
				err = s.queryRow(ctx, tx, `SELECT used FROM api_keys WHERE id = ?`, e.KeyID).Scan(&r.Used)
			}
			r.Repeat, r.Conflict = true, !bytes.Equal(prev, e.BodyHash)
			return r, err
		}
	}
	err := s.queryRow(ctx, tx, `UPDATE api_keys SET used = used + ?1 WHERE id = ?2 AND (quota = 0 OR used + ?1 <= quota) RETURNING used`,
		e.Images, e.KeyID).Scan(&r.Used)
	if errors.Is(err, sql.ErrNoRows) {
		err = s.queryRow(ctx, tx, `SELECT used FROM api_keys WHERE id = ?`, e.KeyID).Scan(&r.Used)
		if errors.Is(err, sql.ErrNoRows) {
			return r, fmt.Errorf("%w: %q", ErrUnknownKey, e.KeyID)
		}
		if err == nil && e.Idem != "" {
			_, err = s.exec(ctx, tx, `DELETE FROM idempotency WHERE key_id = ? AND idem = ?`, e.KeyID, e.Idem)
		}
		r.OverQuota = true
		return r, err
	}
	if err != nil {
		return r, err
	}
	_, err = s.exec(ctx, tx, `INSERT INTO usage_daily(key_id, day, images, requests) VALUES(?, ?, ?, ?)
		ON CONFLICT(key_id, day) DO UPDATE SET images = usage_daily.images + excluded.images, requests = usage_daily.requests + excluded.requests`,
		e.KeyID, day, e.Images, e.Requests)
	return r, err
}

// ErrOverQuota is Record's answer to an entry its key's quota cannot take.
var ErrOverQuota = errors.New("quota exceeded")

// Usage returns the ledger, per key and day; keyID "" returns every key's.
func (s *Store) Usage(ctx context.Context, keyID string) ([]DayUsage, error) {
	q := `SELECT key_id, day, images, requests FROM usage_daily`
	var args []any
	if keyID != "" {
		q += ` WHERE key_id = ?`
		args = append(args, keyID)
	}
	rows, err := s.db.QueryContext(ctx, s.d.bind(q+` ORDER BY key_id, day`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DayUsage
	for rows.Next() {
		var u DayUsage
		if err := rows.Scan(&u.KeyID, &u.Day, &u.Images, &u.Requests); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// nullable scans a possibly NULL text column into *dst ("" for NULL).
func nullable(dst *string) any { return &nullString{dst} }

type nullString struct{ dst *string }

func (n *nullString) Scan(v any) error {
	var ns sql.NullString
	if err := ns.Scan(v); err != nil {
		return err
	}
	*n.dst = ns.String
	return nil
}

// DefenseSecret returns the database's secret seed for the defenses' randomness (noise,
// B4B's per-key transforms), drawn from crypto/rand the first time it is asked for and kept in
// the database, so every server on it (and every restart) uses the same one and nobody who
// knows the code and a key's id can recompute that key's transform.
func (s *Store) DefenseSecret(ctx context.Context) (int64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	fresh := int64(binary.LittleEndian.Uint64(b[:]) &^ (1 << 63))
	if _, err := s.exec(ctx, s.db, `INSERT INTO secrets(name, value) VALUES('defense_seed', ?) ON CONFLICT(name) DO NOTHING`, fresh); err != nil {
		return 0, fmt.Errorf("defense secret: %w", err)
	}
	var v int64
	if err := s.queryRow(ctx, s.db, `SELECT value FROM secrets WHERE name = 'defense_seed'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("defense secret: %w", err)
	}
	return v, nil
}

// DefaultIdempotencyWindow is how long a billed Idempotency-Key is remembered.
const DefaultIdempotencyWindow = 24 * time.Hour

// IdempotencyWindow is how long this store remembers billed Idempotency-Keys.
func (s *Store) IdempotencyWindow() time.Duration {
	if w := time.Duration(s.window.Load()); w > 0 {
		return w
	}
	return DefaultIdempotencyWindow
}

// SetIdempotencyWindow sets how long billed Idempotency-Keys are remembered (> 0).
func (s *Store) SetIdempotencyWindow(w time.Duration) { s.window.Store(int64(w)) }

// Billed returns the body hash under which the key's Idempotency-Key idem was billed, and
// whether it was (records older than the retention window count as never billed).
func (s *Store) Billed(ctx context.Context, keyID, idem string) ([]byte, bool, error) {
	var h []byte
	err := s.queryRow(ctx, s.db, `SELECT body_sha256 FROM idempotency WHERE key_id = ? AND idem = ? AND created_ms >= ?`,
		keyID, idem, time.Now().Add(-s.IdempotencyWindow()).UnixMilli()).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("idempotency: %w", err)
	}
	return h, true, nil
}

// ForgetBilled deletes the idempotency records older than the retention window and returns
// how many it deleted.
func (s *Store) ForgetBilled(ctx context.Context) (int64, error) {
	r, err := s.exec(ctx, s.db, `DELETE FROM idempotency WHERE created_ms < ?`, time.Now().Add(-s.IdempotencyWindow()).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("idempotency: %w", err)
	}
	return r.RowsAffected()
}

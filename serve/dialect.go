package serve

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// dialect is what differs between the store's two databases. Queries are written once, with
// SQLite's placeholders (? and ?N); bind rewrites them for PostgreSQL ($N).
type dialect struct {
	name      string
	bind      func(q string) string
	retryable func(err error) bool // a transaction that may succeed if run again
}

var sqliteDialect = dialect{
	name:      "sqlite",
	bind:      func(q string) string { return q },
	retryable: func(error) bool { return false }, // writers take turns (immediate transactions)
}

var postgresDialect = dialect{name: "postgres", bind: dollarPlaceholders, retryable: pgRetryable}

// dollarPlaceholders rewrites ?N to $N and the k-th bare ? to $k. The store's queries have no
// '?' inside string literals.
func dollarPlaceholders(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 8)
	k := 0
	for i := 0; i < len(q); i++ {
		if q[i] != '?' {
			b.WriteByte(q[i])
			continue
		}
		j := i + 1
		for j < len(q) && q[j] >= '0' && q[j] <= '9' {
			j++
		}
		b.WriteByte('$')
		if j > i+1 {
			b.WriteString(q[i+1 : j])
		} else {
			k++
			b.WriteString(strconv.Itoa(k))
		}
		i = j - 1
	}
	return b.String()
}

// pgRetryable: deadlock_detected and serialization_failure abort a transaction that may
// succeed when run again.
func pgRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// isUniqueViolation reports a unique-constraint failure in either database.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return strings.Contains(err.Error(), "UNIQUE")
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// redactURL is a PostgreSQL URL without its password, for messages and Path.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	return u.Redacted()
}

// postgresSchema is SQLite's schema in PostgreSQL's types (64-bit integers, bytea, double
// precision; PostgreSQL tables have no rowid to drop), derived so the two cannot drift apart.
var postgresSchema = strings.NewReplacer(
	" BLOB ", " BYTEA ", " INTEGER", " BIGINT", " REAL ", " DOUBLE PRECISION ", ") WITHOUT ROWID;", ");",
).Replace(sqliteSchema)

// schemaLock serialises schema creation between servers starting at once (CREATE TABLE IF
// NOT EXISTS is not safe against a concurrent one in PostgreSQL).
const schemaLock = 0x73736c6f6e6e78 // "sslonnx"

// openPostgres opens the PostgreSQL database at dsn and creates the schema if needed.
func openPostgres(dsn string) (*Store, error) {
	name := redactURL(dsn)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := createPostgresSchema(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	return newStore(db, postgresDialect, name)
}

func createPostgresSchema(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, postgresSchema); err != nil {
		return err
	}
	return tx.Commit()
}

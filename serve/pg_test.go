package serve

import (
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The store's tests run on both backends. PostgreSQL is Debian's package (make setup
// installs it); the tests start a private server, on a free loopback port with its data
// directory in a temporary folder, the first time one needs it, and stop it when the test
// binary ends. No system service is used.

// backend makes fresh, empty databases of one kind.
type backend struct {
	name  string
	fresh func(t *testing.T) string // a SQLite path or a PostgreSQL URL
}

// backends is SQLite and PostgreSQL.
func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "server.db") }},
		{"postgres", freshPostgres},
	}
}

// openStore opens db for a test and closes it when the test ends.
func openStore(t *testing.T, db string) *Store {
	t.Helper()
	st, err := OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// eachBackend runs f as a subtest on each backend with a fresh database.
func eachBackend(t *testing.T, f func(t *testing.T, db string)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { f(t, b.fresh(t)) })
	}
}

var pg struct {
	once    sync.Once
	dir     string // data directory's parent (removed at the end)
	bin     string // PostgreSQL's bin directory
	url     string // the server's postgres database, as superuser
	err     error
	asUser  []string // runuser prefix when running as root (PostgreSQL refuses root)
	counter atomic.Int64
}

// freshPostgres creates a new database on the test server and returns its URL.
func freshPostgres(t *testing.T) string {
	t.Helper()
	pg.once.Do(startPostgres)
	if pg.err != nil {
		t.Fatalf("PostgreSQL for the store tests: %v", pg.err)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), pg.counter.Add(1))
	db, err := sql.Open("pgx", pg.url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(pg.url, "/postgres?", "/"+name+"?", 1)
}

// postgresBin finds initdb: on PATH, else the newest /usr/lib/postgresql/N/bin.
func postgresBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return "", fmt.Errorf("initdb not found on PATH or in /usr/lib/postgresql/*/bin: run make setup (it installs Debian's postgresql)")
	}
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) < pgVersion(dirs[j]) })
	return filepath.Dir(dirs[len(dirs)-1]), nil
}

func pgVersion(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

func startPostgres() {
	pg.bin, pg.err = postgresBin()
	if pg.err != nil {
		return
	}
	if pg.dir, pg.err = os.MkdirTemp("", "serve-pg-"); pg.err != nil {
		return
	}
	if os.Geteuid() == 0 { // initdb and postgres refuse to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			pg.err = fmt.Errorf("running as root and no postgres user to run PostgreSQL as: %v", err)
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if pg.err = os.Chown(pg.dir, uid, gid); pg.err != nil {
			return
		}
		pg.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	port, err := freePort()
	if err != nil {
		pg.err = err
		return
	}
	data := filepath.Join(pg.dir, "data")
	if pg.err = pgRun("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"); pg.err != nil {
		return
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", port, pg.dir)
	if pg.err = pgRun("pg_ctl", "-D", data, "-l", filepath.Join(pg.dir, "log"), "-o", opts, "-w", "-t", "60", "start"); pg.err != nil {
		return
	}
	pg.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

// stopPostgres stops the test server (if one was started) and removes its data.
func stopPostgres() {
	if pg.dir == "" {
		return
	}
	if pg.url != "" {
		pgRun("pg_ctl", "-D", filepath.Join(pg.dir, "data"), "-m", "immediate", "-w", "stop")
	}
	os.RemoveAll(pg.dir)
}

func pgRun(name string, args ...string) error {
	argv := append(append(append([]string{}, pg.asUser...), filepath.Join(pg.bin, name)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = pg.dir
	done := make(chan struct{})
	defer close(done)
	go func() { // a hung initdb or pg_ctl must not hang the tests
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			if cmd.Process != nil {
				cmd.Process.Kill()
			}
		}
	}()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// The PostgreSQL schema is derived from SQLite's: every SQLite-only type or clause is gone
// (a 32-bit INTEGER would overflow created_ms), placeholders are rewritten in order.
func TestPostgresDialect(t *testing.T) {
	for _, bad := range []string{"INTEGER", "BLOB", " REAL ", "ROWID"} {
		if strings.Contains(postgresSchema, bad) {
			t.Errorf("PostgreSQL schema still has %q:\n%s", bad, postgresSchema)
		}
	}
	if strings.Count(postgresSchema, "BIGINT") != strings.Count(sqliteSchema, "INTEGER") {
		t.Errorf("not every INTEGER became BIGINT")
	}
	for in, want := range map[string]string{
		"a = ? AND b = ?":             "a = $1 AND b = $2",
		"x = ?1 OR y = ?2 OR z = ?1":  "x = $1 OR y = $2 OR z = $1",
		"SELECT 1":                    "SELECT 1",
		"VALUES(?, ?, ?, ?, ?, ?, ?)": "VALUES($1, $2, $3, $4, $5, $6, $7)",
	} {
		if got := dollarPlaceholders(in); got != want {
			t.Errorf("dollarPlaceholders(%q) = %q, want %q", in, got, want)
		}
	}
}

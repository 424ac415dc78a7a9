package serve

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

// child is a server running in a separate process (this test binary, see runChild).
type child struct {
	cmd  *exec.Cmd
	url  string
	logs string
}

func startChild(t *testing.T, dir, db string, round int) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addrFile := filepath.Join(dir, fmt.Sprintf("addr-%d", round))
	logs := filepath.Join(dir, fmt.Sprintf("child-%d.log", round))
	lf, err := os.Create(logs)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "SERVE_TEST_MODEL="+shared.model, "SERVE_TEST_DB="+db, "SERVE_TEST_ADDR_FILE="+addrFile)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // a failed test leaves no server behind
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil {
			return &child{cmd: cmd, url: "http://" + string(b), logs: logs}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			b, _ := os.ReadFile(logs)
			t.Fatalf("child server did not start within 60 s:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *child) log(t *testing.T) string {
	b, _ := os.ReadFile(c.logs)
	return string(b)
}

// TestKill9LedgerBound checks the ledger guarantee across kill -9: with received the
// images whose replies the client fully read and counted the ledger's total,
//
//	received <= counted <= received + images of requests in flight at the kill
//
// (requests that got no reply; at most one per client connection). Three rounds of load
// and kill -9 on one database, then a clean restart that must continue from the ledger's
// total exactly.
func TestKill9LedgerBound(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "server.db")
	st, err := OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	k, secret, err := st.AddKey(context.Background(), "load", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	const workers = 6
	var counted int64 // ledger total after the previous round
	var received int64
	for round := 0; round < 3; round++ {
		c := startChild(t, dir, db, round)
		var rcvImages, failImages, failReqs, rcvReqs atomic.Int64
		var killing atomic.Bool
		var wg sync.WaitGroup
		tr := &http.Transport{}
		hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for !killing.Load() {
					n := 1 + r.IntN(3)
					x := randomImages(n, r.Uint64())
					req, _ := http.NewRequest("POST", c.url+"/v1/embeddings", strings.NewReader(string(rawBody(x))))
					req.Header.Set("Authorization", "Bearer "+secret)
					req.Header.Set("Content-Type", "application/octet-stream")
					req.Header.Set("Accept", "application/octet-stream")
					req.Header.Set("X-Shape", fmt.Sprintf("%d,3,32,32", n))
					ok := false
					if resp, err := hc.Do(req); err == nil {
						b, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						if err == nil && resp.StatusCode == 200 {
							_, perr := parseRawReply(resp.Header.Get("X-Shape"), b, n)
							ok = perr == nil
						} else if err == nil {
							t.Errorf("round %d: status %d: %s", round, resp.StatusCode, b)
						}
					}
					if ok {
						rcvImages.Add(int64(n))
						rcvReqs.Add(1)
					} else {
						failImages.Add(int64(n))
						failReqs.Add(1)
					}
				}
			}()
		}
		// Kill at a random moment once the load is going.
		target := int64(20 + 15*round)
		for rcvReqs.Load() < target {
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		killing.Store(true)
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		c.cmd.Wait()
		wg.Wait()
		tr.CloseIdleConnections()
		total := ledgerTotal(t, st, k.ID)
		got := total - counted
		counted = total
		received += rcvImages.Load()
		t.Logf("round %d: %d requests / %d images received, %d requests / %d images without reply, ledger +%d",
			round, rcvReqs.Load(), rcvImages.Load(), failReqs.Load(), failImages.Load(), got)
		if got < rcvImages.Load() || got > rcvImages.Load()+failImages.Load() {
			t.Fatalf("round %d: ledger counted %d images, want between received %d and received + unanswered %d",
				round, got, rcvImages.Load(), rcvImages.Load()+failImages.Load())
		}
		if failReqs.Load() > workers {
			t.Fatalf("round %d: %d requests without reply, more than one per connection (%d)", round, failReqs.Load(), workers)
		}
	}
	// Clean restart: the server continues from the ledger, exactly.
	c := startChild(t, dir, db, 3)
	for i := 1; i <= 4; i++ {
		status, r, b := postRaw(t, c.url, secret, randomImages(i, uint64(i)))
		if status != 200 {
			t.Fatalf("after restart: %d %s", status, b)
		}
		counted += int64(i)
		if r.Usage.Used != counted {
			t.Fatalf("after restart, request %d: the server reports %d used, want %d", i, r.Usage.Used, counted)
		}
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child after SIGTERM: %v\n%s", err, c.log(t))
	}
	if !strings.Contains(c.log(t), "shut down cleanly") {
		t.Fatalf("child log lacks the shutdown line:\n%s", c.log(t))
	}
	if total := ledgerTotal(t, st, k.ID); total != counted {
		t.Fatalf("final ledger %d, want %d", total, counted)
	}
	st.Close()
	t.Logf("%d images received over 3 kill -9 rounds; ledger %d after the clean run", received, counted)
}

package attack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ssl-onnx/ssl-onnx/infer"
	"github.com/ssl-onnx/ssl-onnx/serve"
)

// Environment of the attacker child process (this test binary, see runAttackChild).
const (
	childEnv    = "ATTACK_TEST_CHILD"
	childURL    = "ATTACK_TEST_URL"
	childSecret = "ATTACK_TEST_SECRET"
	childDir    = "ATTACK_TEST_DIR"
)

// slowToCache is a victim that dawdles after each answer, before the attack can write it to
// its cache: a kill in that pause loses answers the server has already billed.
type slowToCache struct{ infer.Encoder }

func (s slowToCache) Encode(ctx context.Context, x infer.Images) (infer.Vectors, error) {
	v, err := s.Encoder.Encode(ctx, x)
	time.Sleep(400 * time.Millisecond)
	return v, err
}

// idemAttack is the attack of the kill test: 512 queries of 64 images each, in chunks of
// 128 (two requests per chunk, both lost at once by a kill).
func idemAttack(victim infer.Encoder, dir string) Config {
	return Config{Victim: victim, VictimName: "the kill test's API", QueryDataset: "fmnist", QuerySplit: "test", NumQueries: 512,
		QueryBatch: 128, Loss: "mse", Arch: "resnet18", Stem: "imagenet", Size: 16, Epochs: 1, BatchSize: 257, Seed: 1, Threads: 1,
		Dir: dir, Resume: true}
}

// runAttackChild runs the attack against $ATTACK_TEST_URL until it is killed.
func runAttackChild() error {
	cl, err := serve.Dial(os.Getenv(childURL), os.Getenv(childSecret))
	if err != nil {
		return err
	}
	cl.BatchLimit = 64
	_, err = Run(context.Background(), idemAttack(slowToCache{cl}, os.Getenv(childDir)), io.Discard)
	return err
}

// An attacker killed with -9 after the server answered (and billed) requests whose answers
// never reached its cache resumes and pays exactly its budget: the requests it repeats carry
// the same Idempotency-Keys, which the server answers again without billing.
func TestKill9ResumePaysTheBudgetOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end with a child process")
	}
	path, _ := victimFiles(t)
	enc := openVictim(t, path)
	st, err := serve.OpenStore(filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := serve.Start(enc.Encoder, serve.Config{Store: st, ModelName: "victim", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	k, secret, err := st.AddKey(context.Background(), "attacker", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	billed := func() int64 {
		key, err := st.Key(context.Background(), k.ID)
		if err != nil {
			t.Fatal(err)
		}
		return key.Used
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childURL+"="+srv.URL, childSecret+"="+secret, childDir+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once two chunks (4 requests) are billed: the child is then in its pause after the
	// second chunk's answers, before caching them.
	deadline := time.Now().Add(2 * time.Minute)
	for billed() < 256 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	atKill, cached := billed(), cacheLen(t, dir)
	t.Logf("killed: %d images billed, %d answers cached", atKill, cached)
	if atKill <= int64(cached) {
		t.Fatalf("the kill lost no billed answer (%d billed, %d cached): the test did not reach the window it checks", atKill, cached)
	}
	cl, err := serve.Dial(srv.URL, secret)
	if err != nil {
		t.Fatal(err)
	}
	cl.BatchLimit = 64
	if _, err := Run(context.Background(), idemAttack(cl, dir), io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := billed(); got != 512 {
		t.Fatalf("billed %d images for a 512-query attack killed and resumed (%d billed at the kill, %d cached)", got, atKill, cached)
	}
}

func init() {
	if os.Getenv(childEnv) != "" {
		if err := runAttackChild(); err != nil {
			fmt.Fprintln(os.Stderr, "attacker child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

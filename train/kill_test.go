package train

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// killChildEnv makes the test binary a training child process (see TestMain).
const killChildEnv = "SSL_ONNX_TRAIN_KILL_CHILD"

// TestKill9MidEpochResumes trains in a child process, kills it with SIGKILL in the middle of
// an epoch after at least one checkpoint, and checks that the checkpoint on disk is complete
// and consistent and that a resumed run continues from it: a kill loses at most that epoch.
func TestKill9MidEpochResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: make test runs it")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(3 * time.Minute)
	// Wait for the first checkpoint, then kill somewhere inside the next epoch.
	for {
		ck, err := LoadCheckpoint(dir)
		if err == nil && ck != nil && ck.Epoch >= 1 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("child exited before its first checkpoint: %v", err)
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("no checkpoint after 3 minutes")
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(700 * time.Millisecond)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done

	ck, err := LoadCheckpoint(dir)
	if err != nil || ck == nil {
		t.Fatalf("checkpoint after kill: %v", err)
	}
	for _, f := range []string{ck.Weights, ck.OptimST} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("checkpoint names %s: %v", f, err)
		}
	}
	killedAt := ck.Epoch
	// The checkpoint loads, and training resumes from exactly that epoch.
	if _, m, err := LoadModel(testSession(t), dir); err != nil {
		t.Fatalf("load after kill: %v", err)
	} else {
		m.Close()
	}
	c := smokeConfig(dir, killedAt+1)
	c.Resume = true
	logs, err := Run(context.Background(), c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 1 || logs[0].Epoch != killedAt+1 {
		t.Fatalf("resumed run trained epochs %+v, expected exactly epoch %d", logs, killedAt+1)
	}
	ck2, err := LoadCheckpoint(dir)
	if err != nil || ck2.Epoch != killedAt+1 || ck2.Step <= ck.Step {
		t.Fatalf("after resume: checkpoint %+v (err %v), expected epoch %d and more steps than %d", ck2, err, killedAt+1, ck.Step)
	}
	t.Logf("killed after epoch %d; resumed to epoch %d", killedAt, ck2.Epoch)
}

package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for a server writing and a test
// reading at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeStopsOnSignal: "keyhold serve" run through Run, as the binary
// runs it, shuts down cleanly (exit 0, the data directory free again) on
// SIGTERM and on SIGINT sent to the process.
func TestServeStopsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			data := t.TempDir()
			var out, errOut lockedBuffer
			done := make(chan int, 1)
			go func() {
				done <- Run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--log-level", "warn"},
					strings.NewReader(""), &out, &errOut)
			}()
			deadline := time.Now().Add(60 * time.Second)
			for !strings.Contains(out.String(), "Keyhold is serving at") {
				if time.Now().After(deadline) {
					t.Fatalf("the server did not start: %s", errOut.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // Run's signal handler is installed before serve starts; let it settle
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("exit code %d after %s, want 0 (stderr %q)", code, sig, errOut.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("serve did not stop within 30s of %s", sig)
			}
			// The lock is released: the directory serves again.
			if _, err := os.Stat(filepath.Join(data, "keyhold.lock")); err != nil {
				t.Fatal(err)
			}
			if code, _, stderr := runCLI(t, testEnv{}, "", "admin", "reset-credentials", "--data", data); code != 0 {
				t.Fatalf("the data directory is still held after the stop: %s", stderr)
			}
		})
	}
}

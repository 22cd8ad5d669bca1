//go:build keyhold_faults

package sqlstore_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlite"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// Environment of the child process of TestGroupCommitKill.
const (
	envGroupChild   = "KEYHOLD_GROUPCRASH_CHILD" // the backend's name in a child
	envGroupChildDB = "KEYHOLD_GROUPCRASH_DB"
)

func openBackend(ctx context.Context, backend, db string) (*sqlstore.Store, error) {
	if backend == "sqlite" {
		return sqlite.Open(db)
	}
	return postgres.Open(ctx, db)
}

// TestGroupCommitKill kills (SIGKILL) a process in the middle of grouped
// writes from 32 goroutines, each write answered only after its batch's
// commit, and shows that every write the process acknowledged survives:
// group commit trades no durability for its throughput. Writes it had not
// acknowledged may or may not be there.
func TestGroupCommitKill(t *testing.T) {
	if backend := os.Getenv(envGroupChild); backend != "" {
		groupCrashChild(backend, os.Getenv(envGroupChildDB))
		return
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "crash.db")
			if backend == "postgres" {
				db = storetest.NewPostgresDatabase(t).DSN
			}
			ctx := context.Background()
			// Migrate first, so the child's writes start at once.
			s, err := openBackend(ctx, backend, db)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()

			cmd := exec.Command(os.Args[0], "-test.run=^TestGroupCommitKill$")
			cmd.Env = append(os.Environ(), envGroupChild+"="+backend, envGroupChildDB+"="+db)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			acked := map[string]bool{}
			sc := bufio.NewScanner(out)
			killed := false
			for sc.Scan() {
				key, ok := strings.CutPrefix(sc.Text(), "ack ")
				if !ok {
					continue
				}
				acked[key] = true
				if len(acked) == 400 && !killed {
					if err := cmd.Process.Kill(); err != nil { // SIGKILL
						t.Fatal(err)
					}
					killed = true
				}
			}
			cmd.Wait()
			if !killed {
				t.Fatalf("the child stopped after %d acknowledged writes, before it was killed", len(acked))
			}

			s, err = openBackend(ctx, backend, db)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var stored []*keyhold.Tenant
			if err := s.View(ctx, func(tx keyhold.Tx) error {
				stored, err = tx.ListTenants(ctx)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			have := map[string]bool{}
			for _, tn := range stored {
				have[tn.ID] = true
			}
			lost := 0
			for key := range acked {
				if !have[key] {
					lost++
				}
			}
			if lost > 0 {
				t.Fatalf("%d of %d acknowledged writes were lost in the kill", lost, len(acked))
			}
			t.Logf("%d writes acknowledged before the kill, %d stored (the rest committed unacknowledged)", len(acked), len(have))
		})
	}
}

// groupCrashChild writes tenants from 32 goroutines through UpdateGrouped
// until it is killed, printing "ack <id>" for each write once it returns.
func groupCrashChild(backend, db string) {
	ctx := context.Background()
	s, err := openBackend(ctx, backend, db)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(2)
	}
	s.SetGroupCommit(true) // on PostgreSQL too, where the dialect doesn't group
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				id := fmt.Sprintf("w%02d-%06d", g, n)
				err := s.UpdateGrouped(ctx, func(tx keyhold.Tx) error {
					return tx.CreateTenant(ctx, &keyhold.Tenant{ID: id, DisplayName: id, CreatedAt: time.Now()})
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child: write:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s\n", id) // unbuffered: one write(2) per line
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

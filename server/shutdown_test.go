package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestRunWaitsForEveryWorker: Run returns only once every background
// worker has stopped, and closes the store only after that. A worker that
// is still stopping holds Run: it can still read the store when it is let
// go, and Run returns after it. On SQLite and on PostgreSQL.
func TestRunWaitsForEveryWorker(t *testing.T) {
	backends := map[string]func(t *testing.T) Config{
		"sqlite": func(t *testing.T) Config { return Config{DataDir: t.TempDir()} },
		"postgres": func(t *testing.T) Config {
			db := storetest.NewPostgresDatabase(t) // skips without PostgreSQL, fails with KEYHOLD_REQUIRE_POSTGRES=1
			return Config{DataDir: t.TempDir(), PostgresDSN: db.DSN}
		},
	}
	for name, cfgFor := range backends {
		t.Run(name, func(t *testing.T) {
			stopping := make(chan struct{}) // the worker saw the end of its context
			release := make(chan struct{})  // the test lets it finish
			readErr := make(chan error, 1)  // its last read of the store
			cfg := cfgFor(t)
			cfg.testWorkers = func(store keyhold.Store) []worker {
				return []worker{{"slow to stop", func(ctx context.Context) error {
					<-ctx.Done()
					close(stopping)
					<-release
					readErr <- store.View(context.Background(), func(tx keyhold.Tx) error {
						_, err := tx.ListTenants(context.Background())
						return err
					})
					return nil
				}}}
			}
			srv, err := start(t, cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.cancel()
			srv.cancel = nil // stopped here, not by the cleanup
			<-stopping
			// Everything else stops at once; give Run time to return, as
			// it did while it waited for the operations runner alone.
			select {
			case err := <-srv.done:
				close(release)
				t.Fatalf("Run returned (%v) while a worker was still running", err)
			case <-time.After(500 * time.Millisecond):
			}
			close(release)
			if err := <-readErr; err != nil {
				t.Errorf("a stopping worker's read of the store: %v; want the store still open", err)
			}
			select {
			case err := <-srv.done:
				if err != nil {
					t.Errorf("Run after cancel: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return within 30s of its last worker stopping")
			}
		})
	}
}

// TestStartWorkersFailure: a worker that fails, or stops on its own, ends
// the others' context and is reported, named, by stop; stopping with the
// server is no failure.
func TestStartWorkersFailure(t *testing.T) {
	ctx := context.Background()
	blocked := func(ctx context.Context) error { <-ctx.Done(); return nil }

	stop, failed := startWorkers(ctx, []worker{{"a", blocked}, {"b", func(context.Context) error { return errors.New("boom") }}})
	select {
	case <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("a failed worker did not signal failure")
	}
	if err := stop(); err == nil || err.Error() != "background worker b: boom" {
		t.Errorf("stop = %v, want worker b's failure", err)
	}

	stop, failed = startWorkers(ctx, []worker{{"a", blocked}, {"early", func(context.Context) error { return nil }}})
	<-failed
	if err := stop(); err == nil || err.Error() != "background worker early: stopped on its own" {
		t.Errorf("stop = %v, want the early stop reported", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	stop, failed = startWorkers(cctx, []worker{{"a", blocked}, {"b", blocked}})
	cancel()
	if err := stop(); err != nil {
		t.Errorf("stop after the server's context ended = %v, want nil", err)
	}
	select {
	case <-failed:
		t.Error("stopping with the server signalled a failure")
	default:
	}
}

package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/sqlite"
)

// A kind with a batched step: it records its cursor in the operation and
// asks to run again until the work is done.
func ExampleRunner() {
	dir, _ := os.MkdirTemp("", "ops-example")
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(filepath.Join(dir, "keyhold.db"))
	if err != nil {
		panic(err)
	}
	defer store.Close()

	r, err := ops.New(ops.Config{Store: store, PollInterval: 10 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	r.Register("rekey", ops.Kind{
		Steps: []ops.Step{
			{Name: "reencrypt", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				var cursor struct{ Next int64 }
				if op.Progress != nil {
					json.Unmarshal(op.Progress, &cursor)
				}
				// Re-encrypt items cursor.Next… (idempotently), then
				// move the cursor.
				cursor.Next = min(cursor.Next+40, 100)
				op.Progress, _ = json.Marshal(cursor)
				op.Done, op.Total = cursor.Next, 100
				return ops.StepResult{Again: cursor.Next < op.Total}, nil
			}},
			{Name: "retire-old-key", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				return ops.StepResult{}, nil
			}},
		},
		Rollback: func(ctx context.Context, op *keyhold.Operation) error { return nil },
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	op := &keyhold.Operation{Kind: "rekey", Target: "env-1", TenantID: "tenant-1", CreatedBy: "admin"}
	if err := r.Submit(ctx, op); err != nil {
		panic(err)
	}
	// A second operation on the same environment waits its turn.
	err = r.Submit(ctx, &keyhold.Operation{Kind: "rekey", Target: "env-1"})
	fmt.Println(keyhold.ErrorCode(err))

	// The worker loop; a server runs it for its lifetime.
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	op, err = r.Wait(ctx, op.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println(op.State, op.Done, "of", op.Total)
	// Output:
	// Conflict
	// Succeeded 100 of 100
}

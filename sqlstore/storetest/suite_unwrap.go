package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// testPolicyUnwraps: a policy's last successful unwrap is the zero time
// until one is recorded, is kept per principal and vault, never moves
// back (an older time recorded later, as a slower replica would, changes
// nothing), and goes with the policy.
func testPolicyUnwraps(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	p := policy("sub1", "rg", "unwraps", "44444444-4444-4444-4444-444444444444")
	other := policy("sub1", "rg", "other", "55555555-5555-5555-5555-555555555555")
	const vault, vault2 = "https://customer.example", "/vaults/contoso-kv"
	last := func(principal, vault string) time.Time {
		t.Helper()
		var got time.Time
		view(t, s, func(tx keyhold.Tx) error {
			var err error
			got, err = tx.LastUnwrap(ctx, principal, vault)
			return err
		})
		return got
	}
	record := func(principal, vault string, at time.Time) {
		t.Helper()
		update(t, s, func(tx keyhold.Tx) error { return tx.RecordUnwrap(ctx, principal, vault, at) })
	}
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.CreatePolicy(ctx, p); err != nil {
			return err
		}
		return tx.CreatePolicy(ctx, other)
	})
	if got := last(p.PrincipalID, vault); !got.IsZero() {
		t.Fatalf("LastUnwrap before any = %v, want the zero time", got)
	}
	record(p.PrincipalID, vault, at(time.Minute))
	if got := last(p.PrincipalID, vault); !got.Equal(at(time.Minute)) || got.Location() != time.UTC {
		t.Fatalf("LastUnwrap = %v, want %v in UTC", got, at(time.Minute))
	}
	record(p.PrincipalID, vault, at(0)) // a replica that unwrapped earlier writes late
	if got := last(p.PrincipalID, vault); !got.Equal(at(time.Minute)) {
		t.Fatalf("LastUnwrap after an older record = %v, want it kept at %v", got, at(time.Minute))
	}
	record(p.PrincipalID, vault, at(2*time.Minute))
	if got := last(p.PrincipalID, vault); !got.Equal(at(2 * time.Minute)) {
		t.Fatalf("LastUnwrap after a later record = %v, want %v", got, at(2*time.Minute))
	}
	if got := last(p.PrincipalID, vault2); !got.IsZero() {
		t.Errorf("LastUnwrap of another vault = %v, want the zero time", got)
	}
	record(other.PrincipalID, vault, at(time.Hour))
	if got := last(p.PrincipalID, vault); !got.Equal(at(2 * time.Minute)) {
		t.Errorf("another policy's record moved this one's to %v", got)
	}

	// A failed Update writes nothing.
	err := s.Update(ctx, func(tx keyhold.Tx) error {
		if err := tx.RecordUnwrap(ctx, p.PrincipalID, vault, at(3*time.Minute)); err != nil {
			return err
		}
		return keyhold.Errorf(keyhold.CodeConflict, "rolled back")
	})
	if keyhold.ErrorCode(err) != keyhold.CodeConflict {
		t.Fatalf("Update = %v, want the rollback's error", err)
	}
	if got := last(p.PrincipalID, vault); !got.Equal(at(2 * time.Minute)) {
		t.Errorf("a rolled-back record moved the last unwrap to %v", got)
	}

	update(t, s, func(tx keyhold.Tx) error { return tx.DeletePolicy(ctx, p.SubscriptionID, p.ResourceGroup, p.Name) })
	if got := last(p.PrincipalID, vault); !got.IsZero() {
		t.Errorf("LastUnwrap of a deleted policy = %v, want the zero time", got)
	}
	if got := last(other.PrincipalID, vault); !got.Equal(at(time.Hour)) {
		t.Errorf("deleting a policy removed another's last unwrap: %v", got)
	}
}

package platform

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

const day = 24 * time.Hour

// setSKU changes an environment's type straight in the store (the API
// can't).
func (f *cmkFixture) setSKU(t *testing.T, id string, sku keyhold.EnvironmentSKU) {
	t.Helper()
	if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
		e, err := tx.Environment(context.Background(), id)
		if err != nil {
			return err
		}
		e.SKU = sku
		return tx.UpdateEnvironment(context.Background(), e)
	}); err != nil {
		t.Fatal(err)
	}
}

// envAudit lists an environment's audit entries, oldest first, straight
// from the store (they outlive the environment).
func (f *cmkFixture) envAudit(t *testing.T, id string) []*keyhold.AuditEntry {
	t.Helper()
	var es []*keyhold.AuditEntry
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) (err error) {
		es, err = tx.ListAudit(context.Background(), keyhold.AuditFilter{EnvID: id, Limit: 1000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	return es
}

// warnings counts an environment's deletion warnings by stage label.
func (f *cmkFixture) warnings(t *testing.T, id string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, e := range f.envAudit(t, id) {
		if e.Action == auditEnvDeletionWarning {
			if e.ActorID != systemActorID {
				t.Errorf("warning by %q, want the system", e.ActorID)
			}
			label, _, _ := strings.Cut(e.Detail, ":")
			n[label]++
		}
	}
	return n
}

func (f *cmkFixture) countdown(t *testing.T, times int, want int) {
	t.Helper()
	f.countdownOn(t, f.p, times, want)
}

// countdownOn runs p's countdown times times: the first run deletes want
// environments, the others none.
func (f *cmkFixture) countdownOn(t *testing.T, p *Platform, times int, want int) {
	t.Helper()
	for i := range times {
		n, err := p.RunLockCountdown(context.Background())
		if err != nil {
			t.Fatalf("RunLockCountdown: %v", err)
		}
		if exp := want; i > 0 {
			exp = 0
			if n != exp {
				t.Fatalf("RunLockCountdown run %d deleted %d, want %d", i+1, n, exp)
			}
		} else if n != exp {
			t.Fatalf("RunLockCountdown deleted %d, want %d", n, exp)
		}
	}
}

// operatorPlatform opens another replica over the fixture's store and
// clock with the operator's grace periods, to run its countdown.
func (f *cmkFixture) operatorPlatform(t *testing.T, prod, other time.Duration) *Platform {
	t.Helper()
	p, err := Open(context.Background(), Config{Store: f.store, MasterKey: f.master, Clock: f.clock,
		LockGraceProduction: prod, LockGraceOther: other})
	if err != nil {
		t.Fatalf("Open with grace periods %v, %v: %v", prod, other, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func (f *cmkFixture) requireGone(t *testing.T, id string) {
	t.Helper()
	if _, err := f.p.FindEnvironment(f.ctx, id); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentNotFound {
		t.Errorf("FindEnvironment of a deleted environment: %v, want EnvironmentNotFound", err)
	}
	if wks := f.wrapped(t, id); len(wks) != 0 {
		t.Errorf("deleted environment keeps %d wrapped keys", len(wks))
	}
}

// TestLockCountdown: Locked environments are warned 3 days and 1 day before
// their deadline (28 days for Production, the spec's; 7 days for a Sandbox,
// as an operator set it), then crypto-shredded and deleted; a re-enabled one
// is not; one whose access is restored but not yet re-enabled holds; a crash
// between shred and delete is finished by the next run.
func TestLockCountdown(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		op := f.operatorPlatform(t, 0, 7*day)
		countdown := func(t *testing.T, times, want int) { t.Helper(); f.countdownOn(t, op, times, want) }
		sb := f.lockWorld(t, "sb")       // Sandbox: deleted at 7 days
		prod := f.lockWorld(t, "prod")   // Production: deleted at 28 days
		back := f.lockWorld(t, "back")   // Sandbox, re-enabled at day 5
		crash := f.lockWorld(t, "crash") // Sandbox, crash between shred and delete
		hold := f.lockWorld(t, "hold")   // Sandbox, access restored at day 2, never re-enabled
		sandboxes := []*lockWorld{sb, back, crash, hold}
		for _, w := range sandboxes {
			f.setSKU(t, w.env.ID, keyhold.SKUSandbox)
		}
		countdown(t, 1, 0) // nothing Locked
		t0 := f.clock.Now().UTC()
		for _, w := range append([]*lockWorld{prod}, sandboxes...) {
			f.revoke(t, w.grantSc, w.grantNme)
			f.health(t, w.pol, keyhold.HealthUnhealthy)
			e := f.env(t, w.env.ID)
			if e.State != keyhold.StateLocked || !e.LockedAt.Equal(t0) {
				t.Fatalf("after revocation: state %s, lockedAt %v; want Locked at %v", e.State, e.LockedAt, t0)
			}
			if d := op.LockDeadline(e); !d.Equal(t0.Add(op.LockGrace(e.SKU))) {
				t.Errorf("deadline %v", d)
			}
		}

		f.clock.Advance(day)
		countdown(t, 2, 0)
		f.clock.Advance(day) // day 2: hold's access is restored, not re-enabled
		hold.grantSc, hold.grantNme = f.grantKey(t, hold.pol, hold.v, hold.key)
		f.health(t, hold.pol, keyhold.HealthHealthy)

		f.clock.Advance(2*day + time.Second) // day 4: 3 days before a Sandbox's deadline
		countdown(t, 3, 0)
		for _, w := range []*lockWorld{sb, back, crash} {
			if got := f.warnings(t, w.env.ID); len(got) != 1 || got["3 days before deletion"] != 1 {
				t.Errorf("%s warnings at day 4: %v, want one 3-day warning", w.env.DisplayName, got)
			}
		}
		for _, w := range []*lockWorld{prod, hold} {
			if got := f.warnings(t, w.env.ID); len(got) != 0 {
				t.Errorf("%s warnings at day 4: %v, want none", w.env.DisplayName, got)
			}
		}

		f.clock.Advance(day) // day 5: back is restored and re-enabled
		back.grantSc, back.grantNme = f.grantKey(t, back.pol, back.v, back.key)
		f.health(t, back.pol, keyhold.HealthHealthy)
		if err := f.p.EnableEnvironment(f.ctx, back.env.ID); err != nil {
			t.Fatalf("EnableEnvironment: %v", err)
		}
		if e := f.env(t, back.env.ID); e.State != keyhold.StateEnabled || !e.LockedAt.IsZero() {
			t.Fatalf("re-enabled: state %s, lockedAt %v; want Enabled, zero", e.State, e.LockedAt)
		}

		f.clock.Advance(day) // day 6 + 1s: 1 day before
		countdown(t, 3, 0)
		if got := f.warnings(t, sb.env.ID); len(got) != 2 || got["3 days before deletion"] != 1 || got["1 day before deletion"] != 1 {
			t.Errorf("sandbox warnings at day 6: %v, want one 3-day and one 1-day", got)
		}
		if got := f.warnings(t, back.env.ID); len(got) != 1 || got["1 day before deletion"] != 0 {
			t.Errorf("re-enabled warnings at day 6: %v, want the 3-day one only", got)
		}
		if e := f.env(t, sb.env.ID); e.State != keyhold.StateLocked || len(f.wrapped(t, sb.env.ID)) == 0 {
			t.Fatalf("sandbox at day 6: %s with %d wrapped keys", e.State, len(f.wrapped(t, sb.env.ID)))
		}

		// A crash after the shred of crash's keys, before its deletion.
		if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
			wks, err := tx.WrappedKeys(context.Background(), crash.env.ID)
			for _, wk := range wks {
				if err := tx.DeleteWrappedKey(context.Background(), wk.EnvID, wk.Epoch, wk.Root); err != nil {
					return err
				}
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}

		f.clock.Advance(day) // day 7 + 1s: Sandbox deadline passed
		countdown(t, 3, 2)
		f.requireGone(t, sb.env.ID)
		f.requireGone(t, crash.env.ID)
		var tail []string
		for _, e := range f.envAudit(t, sb.env.ID) {
			if strings.HasPrefix(e.Action, "environment.") && e.Action != auditEnvDeletionWarning {
				tail = append(tail, e.Action)
			}
		}
		if n := len(tail); n < 2 || tail[n-2] != auditEnvCryptoShred || tail[n-1] != auditEnvDelete {
			t.Errorf("sandbox audit %v, want it to end %s, %s", tail, auditEnvCryptoShred, auditEnvDelete)
		}
		es := f.envAudit(t, crash.env.ID)
		if last := es[len(es)-1]; last.Action != auditEnvDelete || last.ActorID != systemActorID || !strings.Contains(last.Detail, "not restored") {
			t.Errorf("crash audit ends %+v, want the system's deletion with its reason", last)
		}
		if e := f.env(t, prod.env.ID); e.State != keyhold.StateLocked {
			t.Errorf("production at day 7: %s, want still Locked", e.State)
		}
		if e := f.env(t, hold.env.ID); e.State != keyhold.StateLocked || len(f.wrapped(t, hold.env.ID)) == 0 {
			t.Errorf("held environment at day 7: %s, want Locked with its keys", e.State)
		}
		if got := f.warnings(t, hold.env.ID); len(got) != 0 {
			t.Errorf("held environment warnings: %v, want none", got)
		}

		f.clock.Advance(18 * day) // day 25 + 1s
		countdown(t, 2, 0)
		if got := f.warnings(t, prod.env.ID); len(got) != 1 || got["3 days before deletion"] != 1 {
			t.Errorf("production warnings at day 25: %v", got)
		}
		f.clock.Advance(3 * day) // day 28 + 1s
		countdown(t, 2, 1)
		f.requireGone(t, prod.env.ID)

		f.clock.Advance(10 * day) // day 38
		countdown(t, 1, 0)
		if e := f.env(t, back.env.ID); e.State != keyhold.StateEnabled {
			t.Errorf("re-enabled environment at day 38: %s", e.State)
		}
		f.check(t, back.env.ID, back.data)
		if e := f.env(t, hold.env.ID); e.State != keyhold.StateLocked {
			t.Errorf("held environment at day 38: %s", e.State)
		}
	})
}

// TestCountdownOnTheDot: by default a Locked Production environment is
// deleted after the spec's 28 days ("Locked production environments are
// deleted if they aren't unlocked after 28 days", 001): it survives day 27
// and its deadline minus a second, and is deleted at the deadline itself.
func TestCountdownOnTheDot(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		prod := f.lockWorld(t, "dot-prod")
		f.revoke(t, prod.grantSc, prod.grantNme)
		f.health(t, prod.pol, keyhold.HealthUnhealthy)
		f.clock.Advance(27 * day)
		f.countdown(t, 1, 0)
		if got := f.warnings(t, prod.env.ID); got["1 day before deletion"] != 1 {
			t.Errorf("production warnings at day 27: %v, want the 1-day warning", got)
		}
		f.clock.Advance(day - time.Second)
		f.countdown(t, 1, 0)
		if e := f.env(t, prod.env.ID); e.State != keyhold.StateLocked || len(f.wrapped(t, prod.env.ID)) == 0 {
			t.Fatalf("production a second before 28 days: %s with %d wrapped keys, want Locked with its keys",
				e.State, len(f.wrapped(t, prod.env.ID)))
		}
		f.clock.Advance(time.Second)
		f.countdown(t, 1, 1)
		f.requireGone(t, prod.env.ID)
	})
}

// TestCountdownKeepsOtherTypes: the spec names no deletion period for
// environments other than Production, so by default a Locked Sandbox is
// kept, with its keys and without warnings, until an administrator acts:
// still there after 400 days, and it can be re-enabled then.
func TestCountdownKeepsOtherTypes(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		sb := f.lockWorld(t, "keep-sb")
		f.setSKU(t, sb.env.ID, keyhold.SKUSandbox)
		f.revoke(t, sb.grantSc, sb.grantNme)
		f.health(t, sb.pol, keyhold.HealthUnhealthy)
		for range 40 {
			f.clock.Advance(10 * day)
			f.countdown(t, 1, 0)
		}
		e := f.env(t, sb.env.ID)
		if e.State != keyhold.StateLocked || len(f.wrapped(t, sb.env.ID)) == 0 {
			t.Fatalf("sandbox after 400 days: %s with %d wrapped keys, want Locked with its keys", e.State, len(f.wrapped(t, sb.env.ID)))
		}
		if got := f.warnings(t, sb.env.ID); len(got) != 0 {
			t.Errorf("sandbox warnings after 400 days: %v, want none", got)
		}
		sb.grantSc, sb.grantNme = f.grantKey(t, sb.pol, sb.v, sb.key)
		f.health(t, sb.pol, keyhold.HealthHealthy)
		if err := f.p.EnableEnvironment(f.ctx, sb.env.ID); err != nil {
			t.Fatalf("EnableEnvironment after 400 days: %v", err)
		}
		f.check(t, sb.env.ID, sb.data)
	})
}

// TestCountdownOperatorPeriods: the operator's periods replace the
// defaults. A Sandbox is deleted after the operator's 10 days, not a second
// before; Production after the operator's 40 days, not after 28; and
// KeepLocked keeps Production until an administrator acts.
func TestCountdownOperatorPeriods(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		op := f.operatorPlatform(t, 40*day, 10*day)
		keep := f.operatorPlatform(t, KeepLocked, 0)
		sb, prod := f.lockWorld(t, "op-sb"), f.lockWorld(t, "op-prod")
		f.setSKU(t, sb.env.ID, keyhold.SKUSandbox)
		for _, w := range []*lockWorld{sb, prod} {
			f.revoke(t, w.grantSc, w.grantNme)
			f.health(t, w.pol, keyhold.HealthUnhealthy)
		}
		f.clock.Advance(10*day - time.Second)
		f.countdownOn(t, op, 1, 0)
		if got := f.warnings(t, sb.env.ID); got["1 day before deletion"] != 1 {
			t.Errorf("sandbox warnings a second before 10 days: %v, want the 1-day warning", got)
		}
		f.clock.Advance(time.Second)
		f.countdownOn(t, op, 1, 1)
		f.requireGone(t, sb.env.ID)

		f.clock.Advance(20 * day) // day 30: past the default 28
		f.countdownOn(t, op, 1, 0)
		f.countdownOn(t, keep, 1, 0)
		if e := f.env(t, prod.env.ID); e.State != keyhold.StateLocked {
			t.Fatalf("production at day 30 with a 40-day period: %s, want Locked", e.State)
		}
		f.clock.Advance(100 * day)
		f.countdownOn(t, keep, 1, 0)
		if e := f.env(t, prod.env.ID); e.State != keyhold.StateLocked || len(f.wrapped(t, prod.env.ID)) == 0 {
			t.Fatalf("production at day 130, kept Locked: %s with %d wrapped keys", e.State, len(f.wrapped(t, prod.env.ID)))
		}
		f.countdownOn(t, op, 1, 1)
		f.requireGone(t, prod.env.ID)
	})
}

// TestCountdownShortPeriodWarnings: with an operator's period shorter than
// a warning's lead (2 days against the 3-day warning) that warning is
// skipped rather than written at the lock with the wrong time; the 1-day
// warning still comes a day before.
func TestCountdownShortPeriodWarnings(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		op := f.operatorPlatform(t, 0, 2*day)
		sb := f.lockWorld(t, "short-sb")
		f.setSKU(t, sb.env.ID, keyhold.SKUSandbox)
		f.revoke(t, sb.grantSc, sb.grantNme)
		f.health(t, sb.pol, keyhold.HealthUnhealthy)
		f.countdownOn(t, op, 1, 0)
		if got := f.warnings(t, sb.env.ID); len(got) != 0 {
			t.Errorf("warnings at the lock with a 2-day period: %v, want none", got)
		}
		f.clock.Advance(day)
		f.countdownOn(t, op, 2, 0)
		if got := f.warnings(t, sb.env.ID); len(got) != 1 || got["1 day before deletion"] != 1 {
			t.Errorf("warnings a day before: %v, want the 1-day one only", got)
		}
		f.clock.Advance(day)
		f.countdownOn(t, op, 1, 1)
		f.requireGone(t, sb.env.ID)
	})
}

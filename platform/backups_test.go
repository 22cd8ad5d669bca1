package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// backupState renders an environment's data state (dataState) and its
// backups, to show that a refusal changed nothing.
func (f *cmkFixture) backupState(t *testing.T, envID string) string {
	t.Helper()
	bs, err := f.p.ListBackups(f.ctx, envID)
	if err != nil {
		t.Fatal(err)
	}
	s := f.dataState(t, envID)
	for _, b := range bs {
		s += fmt.Sprintf("backup %s %q rows %d files %d\n", b.ID, b.Label, b.Rows, b.Files)
	}
	return s + fmt.Sprintf("ops %d\n", len(f.operations(t, envID)))
}

// sandboxEnv creates a managed Sandbox environment in cmkLocation.
func (f *cmkFixture) sandboxEnv(t *testing.T, name string) *keyhold.Environment {
	t.Helper()
	e := &keyhold.Environment{DisplayName: name, Location: cmkLocation, SKU: keyhold.SKUSandbox}
	if err := f.p.CreateEnvironment(f.ctx, e); err != nil {
		t.Fatalf("CreateEnvironment: %v", err)
	}
	on := true
	e, err := f.p.UpdateEnvironment(f.ctx, e.ID, keyhold.EnvironmentUpdate{Managed: &on})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// rowGone requires that a row is not found.
func (f *cmkFixture) rowGone(t *testing.T, envID, table, id string) {
	t.Helper()
	if _, err := f.p.GetRow(f.ctx, envID, table, id); keyhold.ErrorCode(err) != keyhold.CodeRowNotFound {
		t.Errorf("GetRow %s/%s of %s: %v, want RowNotFound", table, id, envID, err)
	}
}

// TestBackupRestoreRoundTrip: a backup keeps the data as it was; after
// rows are changed, deleted and added and a file replaced, restoring it
// brings back exactly the backed-up rows and files, and nothing written
// since; restoring twice is the same. Bad input is refused and changes
// nothing.
func TestBackupRestoreRoundTrip(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		env := f.managedEnv(t, "prod")
		want := f.fill(t, env.ID, 9, 2*ChunkSize+33, 0, 7)
		b, err := f.p.CreateBackup(f.ctx, env.ID, "before the change")
		if err != nil {
			t.Fatal(err)
		}
		if b.Rows != 9 || b.Files != 3 || b.Bytes != 2*ChunkSize+33+7 {
			t.Errorf("backup counts rows %d files %d bytes %d, want 9, 3, %d", b.Rows, b.Files, b.Bytes, 2*ChunkSize+40)
		}
		if d := b.ExpiresAt.Sub(b.CreatedAt); d != keyhold.BackupRetentionProduction {
			t.Errorf("a Production backup lives %s, want %s", d, keyhold.BackupRetentionProduction)
		}

		before := f.backupState(t, env.ID)
		for _, bad := range []string{strings.Repeat("x", keyhold.MaxBackupLabel+1), "tab\there", "bell\a"} {
			if _, err := f.p.CreateBackup(f.ctx, env.ID, bad); keyhold.ErrorCode(err) != keyhold.CodeInvalidRequestContent {
				t.Errorf("CreateBackup with label %q: %v, want InvalidRequestContent", bad, err)
			}
		}
		if _, err := f.p.RestoreBackup(f.ctx, env.ID, "no-such-backup"); keyhold.ErrorCode(err) != keyhold.CodeBackupNotFound {
			t.Errorf("RestoreBackup of an unknown backup: %v, want BackupNotFound", err)
		}
		if err := f.p.DeleteBackup(f.ctx, env.ID, "no-such-backup"); keyhold.ErrorCode(err) != keyhold.CodeBackupNotFound {
			t.Errorf("DeleteBackup of an unknown backup: %v, want BackupNotFound", err)
		}
		if _, err := f.p.CopyEnvironment(f.ctx, env.ID, env.ID); keyhold.ErrorCode(err) != keyhold.CodeBadRequest {
			t.Errorf("CopyEnvironment onto itself: %v, want BadRequest", err)
		}
		if after := f.backupState(t, env.ID); after != before {
			t.Fatalf("refused requests changed the environment:\n%s\nthen\n%s", before, after)
		}

		// Change everything.
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "r0000", json.RawMessage(`{"changed":true}`)); err != nil {
			t.Fatal(err)
		}
		if err := f.p.DeleteRow(f.ctx, env.ID, "contacts", "r0001"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "added", json.RawMessage(`{"new":1}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.PutFile(f.ctx, env.ID, "file-0.bin", strings.NewReader("replaced")); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			f.succeed(t, "restore", func() (*keyhold.Operation, error) { return f.p.RestoreBackup(f.ctx, env.ID, b.ID) })
			f.check(t, env.ID, want)
			f.rowGone(t, env.ID, "accounts", "added")
		}
		// The data restored is writable as usual, at its next version.
		r, err := f.p.PutRow(f.ctx, env.ID, "accounts", "r0000", json.RawMessage(`{"after":"restore"}`))
		if err != nil || r.Version != 3 {
			t.Errorf("PutRow after the restore: version %v, %v; want version 3 (the backup held version 2)", r, err)
		}
		count := map[string]int{}
		acts := f.auditActions(t, env.ID)
		for _, a := range acts {
			count[a]++
		}
		if count[auditRestore] != 2 || count[auditRestoreStart] != 2 {
			t.Errorf("audit %s: want two restores, each started and done", acts)
		}
		// The backup itself is unchanged by the restores and still listed.
		bs, err := f.p.ListBackups(f.ctx, env.ID)
		if err != nil || len(bs) != 1 || bs[0].ID != b.ID || bs[0].Label != "before the change" {
			t.Errorf("ListBackups = %v, %v; want the one backup", bs, err)
		}
		if err := f.p.DeleteBackup(f.ctx, env.ID, b.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.RestoreBackup(f.ctx, env.ID, b.ID); keyhold.ErrorCode(err) != keyhold.CodeBackupNotFound {
			t.Errorf("RestoreBackup of a deleted backup: %v, want BackupNotFound", err)
		}
	})
}

// TestBackupKeysFollowTheEnvironment: a backup taken under the platform's
// key before a link is moved to the customer's key by the link (no MMK
// copy of any epoch is left); the re-key keeps the old epoch only while
// the backup holds items under it; restoring the pre-link backup works
// under the customer's key; deleting the backup destroys the old epoch.
func TestBackupKeysFollowTheEnvironment(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-follow", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-follow", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		env := f.managedEnv(t, "follow")
		want := f.fill(t, env.ID, 4, ChunkSize+1)
		b, err := f.p.CreateBackup(f.ctx, env.ID, "pre-link")
		if err != nil {
			t.Fatal(err)
		}
		first := f.env(t, env.ID).Epoch
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		cur := f.env(t, env.ID).Epoch
		if cur == first {
			t.Fatalf("the link did not start a new epoch (%d)", cur)
		}
		kept := false
		for _, wk := range f.wrapped(t, env.ID) {
			if wk.Root != keyhold.RootCMK {
				t.Errorf("after the link a %s copy of epoch %d is left: %v", wk.Root, wk.Epoch, describeKeys(f.wrapped(t, env.ID)))
			}
			kept = kept || wk.Epoch == first
		}
		if !kept {
			t.Fatalf("the re-key destroyed epoch %d while a backup holds items under it: %v", first, describeKeys(f.wrapped(t, env.ID)))
		}
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "later", json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}
		f.succeed(t, "restore", func() (*keyhold.Operation, error) { return f.p.RestoreBackup(f.ctx, env.ID, b.ID) })
		f.check(t, env.ID, want)
		f.rowGone(t, env.ID, "accounts", "later")
		for _, c := range f.epochCounts(t, env.ID) {
			if c.Epoch != cur && c.Rows+c.Files > 0 {
				t.Errorf("restored items landed on epoch %d, want all on the current %d", c.Epoch, cur)
			}
		}
		if err := f.p.DeleteBackup(f.ctx, env.ID, b.ID); err != nil {
			t.Fatal(err)
		}
		for _, wk := range f.wrapped(t, env.ID) {
			if wk.Epoch != cur {
				t.Errorf("epoch %d's key outlived the last backup holding items under it", wk.Epoch)
			}
		}
		if acts := f.auditActions(t, env.ID); acts[len(acts)-1] != auditEpochDestroy {
			t.Errorf("audit ends %v, want %s", acts, auditEpochDestroy)
		}
		f.check(t, env.ID, want)
	})
}

// TestRestoreAndCopyFollowTheKey: data under a customer-managed key may be
// restored or copied only to its own environment or to one under the same
// key (another policy naming the same key counts); to an environment under
// the platform's key or another key it is refused, naming both keys, and
// nothing changes. Data under the platform's key may go anywhere.
func TestRestoreAndCopyFollowTheKey(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "src")
		b, err := f.p.CreateBackup(f.ctx, w.env.ID, "cmk")
		if err != nil {
			t.Fatal(err)
		}
		// Same key, other policy.
		twin := f.newPolicy(t, "pol-twin", w.v, w.key, nil)
		f.grantKey(t, twin, w.v, w.key)
		same := f.managedEnv(t, "same-key")
		f.succeed(t, "link twin", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, same.ID, twin.SystemID) })
		// Another key.
		other := f.lockWorld(t, "other")
		// The platform's key, and a Support Investigation environment.
		plain := f.managedEnv(t, "plain")
		plainData := f.fill(t, plain.ID, 2)
		si := &keyhold.Environment{DisplayName: "support", Location: cmkLocation, SKU: keyhold.SKUSupportInvestigation}
		if err := f.p.CreateEnvironment(f.ctx, si); err != nil {
			t.Fatal(err)
		}

		for _, tc := range []struct {
			name   string
			target string
			want   []string
		}{
			{"platform key", plain.ID, []string{"customer-managed key " + w.key, "Microsoft-managed key", "link it"}},
			{"other key", other.env.ID, []string{"key vault kv-src", "key vault kv-other"}},
			{"support investigation", si.ID, []string{"Support Investigation", "changed to that customer-managed key"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before, src := f.backupState(t, tc.target), f.backupState(t, w.env.ID)
				_, rerr := f.p.RestoreBackup(f.ctx, tc.target, b.ID)
				_, cerr := f.p.CopyEnvironment(f.ctx, tc.target, w.env.ID)
				for what, err := range map[string]error{"restore": rerr, "copy": cerr} {
					if keyhold.ErrorCode(err) != keyhold.CodeBadRequest {
						t.Errorf("%s to %s: %v, want BadRequest", what, tc.name, err)
						continue
					}
					for _, s := range tc.want {
						if what == "restore" && s == "Support Investigation" {
							continue
						}
						if !strings.Contains(keyhold.ErrorMessage(err), s) {
							t.Errorf("%s refusal %q lacks %q", what, keyhold.ErrorMessage(err), s)
						}
					}
				}
				if after := f.backupState(t, tc.target); after != before {
					t.Errorf("the refusals changed the target:\n%s\nthen\n%s", before, after)
				}
				if after := f.backupState(t, w.env.ID); after != src {
					t.Errorf("the refusals changed the source:\n%s\nthen\n%s", src, after)
				}
			})
		}

		// Same key: restore and copy both land, re-sealed under the target's key.
		f.succeed(t, "restore to the same key", func() (*keyhold.Operation, error) { return f.p.RestoreBackup(f.ctx, same.ID, b.ID) })
		f.check(t, same.ID, w.data)
		if _, err := f.p.PutRow(f.ctx, w.env.ID, "accounts", "r0000", json.RawMessage(`{"copied":"yes"}`)); err != nil {
			t.Fatal(err)
		}
		w.data.rows["accounts/r0000"] = `{"copied":"yes"}`
		f.succeed(t, "copy to the same key", func() (*keyhold.Operation, error) { return f.p.CopyEnvironment(f.ctx, same.ID, w.env.ID) })
		f.check(t, same.ID, w.data)
		f.check(t, w.env.ID, w.data) // the source is untouched
		if bs, _ := f.p.ListBackups(f.ctx, w.env.ID); len(bs) != 1 || bs[0].ID != b.ID {
			t.Errorf("source backups after the copy: %v, want only %s (the copy's snapshot deleted)", bs, b.ID)
		}
		// The platform's key: its data may be copied under a customer's key.
		f.succeed(t, "copy a plain environment", func() (*keyhold.Operation, error) { return f.p.CopyEnvironment(f.ctx, other.env.ID, plain.ID) })
		f.check(t, other.env.ID, plainData)
		f.rowGone(t, other.env.ID, "contacts", "r0005")
	})
}

// TestDatabaseOpsRefusedWhenLocked: backup, restore (to or from), copy (to
// or from) and reset are refused with EnvironmentLocked while an
// environment is Locked, and change nothing.
func TestDatabaseOpsRefusedWhenLocked(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "locked")
		b, err := f.p.CreateBackup(f.ctx, w.env.ID, "before the lock")
		if err != nil {
			t.Fatal(err)
		}
		twin := f.newPolicy(t, "pol-twin", w.v, w.key, nil)
		f.grantKey(t, twin, w.v, w.key)
		peer := f.sandboxEnv(t, "peer")
		f.succeed(t, "link peer", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, peer.ID, twin.SystemID) })
		pb, err := f.p.CreateBackup(f.ctx, peer.ID, "peer")
		if err != nil {
			t.Fatal(err)
		}
		f.revoke(t, w.grantSc, w.grantNme)
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		f.requireLocked(t, w, "")

		locked, other := f.backupState(t, w.env.ID), f.backupState(t, peer.ID)
		calls := map[string]func() error{
			"backup":            func() error { _, err := f.p.CreateBackup(f.ctx, w.env.ID, "x"); return err },
			"restore over it":   func() error { _, err := f.p.RestoreBackup(f.ctx, w.env.ID, pb.ID); return err },
			"restore its own":   func() error { _, err := f.p.RestoreBackup(f.ctx, w.env.ID, b.ID); return err },
			"restore from it":   func() error { _, err := f.p.RestoreBackup(f.ctx, peer.ID, b.ID); return err },
			"copy from it":      func() error { _, err := f.p.CopyEnvironment(f.ctx, peer.ID, w.env.ID); return err },
			"copy over it":      func() error { _, err := f.p.CopyEnvironment(f.ctx, w.env.ID, peer.ID); return err },
			"reset a locked sb": nil,
		}
		delete(calls, "reset a locked sb") // below, on a Sandbox
		for name, call := range calls {
			err := call()
			if keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked || !strings.Contains(keyhold.ErrorMessage(err), w.pol.ID()) {
				t.Errorf("%s: %v, want EnvironmentLocked naming the policy", name, err)
			}
		}
		if after := f.backupState(t, w.env.ID); after != locked {
			t.Errorf("refusals changed the locked environment:\n%s\nthen\n%s", locked, after)
		}
		if after := f.backupState(t, peer.ID); after != other {
			t.Errorf("refusals changed the other environment:\n%s\nthen\n%s", other, after)
		}

		// A locked Sandbox can't be reset either (its data would be gone
		// and it would serve again without the customer's key).
		f.revokeAll(t, twin, w.v, w.key)
		f.health(t, twin, keyhold.HealthUnhealthy)
		before := f.backupState(t, peer.ID)
		if _, err := f.p.ResetEnvironment(f.ctx, peer.ID); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
			t.Errorf("ResetEnvironment of a locked Sandbox: %v, want EnvironmentLocked", err)
		}
		if after := f.backupState(t, peer.ID); after != before {
			t.Errorf("the refused reset changed the Sandbox:\n%s\nthen\n%s", before, after)
		}
	})
}

// revokeAll deletes every role assignment of pol's identity on key.
func (f *cmkFixture) revokeAll(t *testing.T, pol *keyhold.EnterprisePolicy, v *keyhold.Vault, key string) {
	t.Helper()
	scope := v.ID() + "/keys/" + key
	as, err := f.arm.ListRoleAssignments(f.ctx, scope, keyhold.AssignmentFilter{PrincipalID: pol.PrincipalID})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.PrincipalID == pol.PrincipalID && strings.EqualFold(a.Scope, scope) {
			f.revoke(t, scope, a.ID)
		}
	}
}

// TestRunningRestoreAndCopyPauseOnLock: a restore whose target locks, and
// a copy whose source locks, after they were started pause (Running, a
// Paused message naming the environment) without touching any data, and
// finish after the re-enable.
func TestRunningRestoreAndCopyPauseOnLock(t *testing.T) {
	fastLockRecheck(t, rekeyBatch, rekeyStepTime)
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "pause")
		b, err := f.p.CreateBackup(f.ctx, w.env.ID, "b")
		if err != nil {
			t.Fatal(err)
		}
		twin := f.newPolicy(t, "pol-twin", w.v, w.key, nil)
		f.grantKey(t, twin, w.v, w.key)
		peer := f.managedEnv(t, "peer")
		f.succeed(t, "link peer", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, peer.ID, twin.SystemID) })
		peerData := f.fill(t, peer.ID, 3)
		if _, err := f.p.PutRow(f.ctx, w.env.ID, "accounts", "later", json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}

		// Lock the environment as another replica's monitor would (the key
		// stays accessible, so the re-enable works), then start what was
		// "already running": the operations are created as their starts do.
		lock := func(envID string) {
			f.lockFromTrigger(t, false, w.pol, "", "", envID)
		}
		start := func(kind string, target *keyhold.Environment, in dbInput) *keyhold.Operation {
			var op *keyhold.Operation
			if err := f.store.Update(f.ctx, func(tx keyhold.Tx) (err error) {
				op, err = f.p.startDBOp(f.ctx, tx, keyhold.IdentityFrom(f.ctx), target, kind, in, "test.start", "started before the lock")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			f.p.ops.Kick()
			return op
		}

		lock(w.env.ID)
		before := f.dataState(t, w.env.ID)
		op := start(keyhold.OpRestore, w.env, dbInput{BackupID: b.ID, SourceID: w.env.ID})
		requirePausedOnLock(t, f.waitPaused(t, op.ID), stepStage, w.env.ID, w.pol.ID(), "")
		if after := f.dataState(t, w.env.ID); after != before {
			t.Errorf("a paused restore changed data:\n%s\nthen\n%s", before, after)
		}
		if err := f.p.EnableEnvironment(f.ctx, w.env.ID); err != nil {
			t.Fatal(err)
		}
		if op = f.wait(t, op); op.State != keyhold.OperationSucceeded {
			t.Fatalf("restore after the re-enable: %s %s %s", op.State, op.ErrorCode, op.ErrorMsg)
		}
		f.check(t, w.env.ID, w.data)
		f.rowGone(t, w.env.ID, "accounts", "later")

		// A copy whose source is locked pauses before its snapshot.
		lock(w.env.ID)
		before = f.dataState(t, peer.ID)
		op = start(keyhold.OpCopy, peer, dbInput{SourceID: w.env.ID})
		requirePausedOnLock(t, f.waitPaused(t, op.ID), stepSnapshot, w.env.ID, w.pol.ID(), "")
		if after := f.dataState(t, peer.ID); after != before {
			t.Errorf("a paused copy changed its target:\n%s\nthen\n%s", before, after)
		}
		f.check(t, peer.ID, peerData)
		if err := f.p.EnableEnvironment(f.ctx, w.env.ID); err != nil {
			t.Fatal(err)
		}
		if op = f.wait(t, op); op.State != keyhold.OperationSucceeded {
			t.Fatalf("copy after the re-enable: %s %s %s", op.State, op.ErrorCode, op.ErrorMsg)
		}
		f.check(t, peer.ID, w.data)
	})
}

// TestResetSandbox: a reset deletes a Sandbox's rows, files and backups,
// unlinks it from its policy and leaves it under a new epoch that only the
// platform's key wraps; the environment then serves new data. A
// Production environment is refused and keeps everything.
func TestResetSandbox(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "prod")
		before := f.backupState(t, w.env.ID)
		if _, err := f.p.ResetEnvironment(f.ctx, w.env.ID); keyhold.ErrorCode(err) != keyhold.CodeBadRequest || !strings.Contains(keyhold.ErrorMessage(err), "only a Sandbox") {
			t.Errorf("ResetEnvironment of a Production environment: %v, want BadRequest", err)
		}
		if after := f.backupState(t, w.env.ID); after != before {
			t.Errorf("the refused reset changed the environment:\n%s\nthen\n%s", before, after)
		}

		sb := f.sandboxEnv(t, "sandbox")
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, sb.ID, w.pol.SystemID) })
		data := f.fill(t, sb.ID, 5, ChunkSize+3)
		if _, err := f.p.CreateBackup(f.ctx, sb.ID, "gone soon"); err != nil {
			t.Fatal(err)
		}
		epoch := f.env(t, sb.ID).Epoch
		f.succeed(t, "reset", func() (*keyhold.Operation, error) { return f.p.ResetEnvironment(f.ctx, sb.ID) })
		e := f.env(t, sb.ID)
		if e.KeyManagedBy != keyhold.KeyManagedByMicrosoft || e.PolicyID != "" || e.PolicySystemID != "" || e.Epoch != epoch+1 || e.State != keyhold.StateEnabled {
			t.Errorf("after reset: %+v; want Enabled, Microsoft-managed, unlinked, epoch %d", e, epoch+1)
		}
		if got := describeKeys(f.wrapped(t, sb.ID)); len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprintf("%d/MMK/", epoch+1)) {
			t.Errorf("wrapped keys after reset %v, want one MMK key of epoch %d", got, epoch+1)
		}
		for k := range data.rows {
			table, id, _ := strings.Cut(k, "/")
			f.rowGone(t, sb.ID, table, id)
		}
		if _, _, err := f.p.OpenFile(f.ctx, sb.ID, "file-0.bin"); keyhold.ErrorCode(err) != keyhold.CodeFileNotFound {
			t.Errorf("OpenFile after reset: %v, want FileNotFound", err)
		}
		if bs, err := f.p.ListBackups(f.ctx, sb.ID); err != nil || len(bs) != 0 {
			t.Errorf("backups after reset: %v, %v; want none", bs, err)
		}
		if cs := f.epochCounts(t, sb.ID); len(cs) != 0 {
			t.Errorf("items left after reset: %v", cs)
		}
		fresh := f.fill(t, sb.ID, 2, 10)
		f.check(t, sb.ID, fresh)
		f.check(t, w.env.ID, w.data) // the policy's other environment is untouched
	})
}

// TestBackupExpiry: a backup is deleted when it expires (7 days for a
// Sandbox, 28 for Production), and the old epoch only it held items under
// is destroyed with it; the expired backups of a Locked environment are
// kept until it serves again.
func TestBackupExpiry(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		sb := f.sandboxEnv(t, "sb")
		f.fill(t, sb.ID, 2)
		sbb, err := f.p.CreateBackup(f.ctx, sb.ID, "sandbox")
		if err != nil {
			t.Fatal(err)
		}
		if d := sbb.ExpiresAt.Sub(sbb.CreatedAt); d != keyhold.BackupRetention {
			t.Errorf("a Sandbox backup lives %s, want %s", d, keyhold.BackupRetention)
		}
		w := f.lockWorld(t, "exp") // linked after its data: re-keyed, one epoch left
		plain := f.managedEnv(t, "plain")
		data := f.fill(t, plain.ID, 3)
		pb, err := f.p.CreateBackup(f.ctx, plain.ID, "pre-link")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.CreateBackup(f.ctx, w.env.ID, "locked one"); err != nil {
			t.Fatal(err)
		}
		f.succeed(t, "link plain", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, plain.ID, w.pol.SystemID) })
		if n := len(f.wrapped(t, plain.ID)); n != 2 {
			t.Fatalf("%d wrapped keys after the link, want 2 (the backup's epoch kept)", n)
		}

		f.clock.Advance(keyhold.BackupRetention - time.Minute)
		if n, err := f.p.PruneBackups(context.Background()); err != nil || n != 0 {
			t.Fatalf("PruneBackups before any expiry = %d, %v; want 0", n, err)
		}
		f.clock.Advance(time.Minute)
		if n, err := f.p.PruneBackups(context.Background()); err != nil || n != 1 {
			t.Fatalf("PruneBackups at the Sandbox expiry = %d, %v; want 1", n, err)
		}
		if bs, _ := f.p.ListBackups(f.ctx, sb.ID); len(bs) != 0 {
			t.Errorf("the Sandbox backup outlived its expiry: %v", bs)
		}

		// Lock w, then let every Production backup expire.
		f.revoke(t, w.grantSc, w.grantNme)
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		f.clock.Advance(keyhold.BackupRetentionProduction)
		if _, err := f.p.PruneBackups(context.Background()); err != nil {
			t.Fatal(err)
		}
		var lockedBackups int
		if err := f.store.View(f.ctx, func(tx keyhold.Tx) error {
			bs, err := tx.ListBackups(f.ctx, w.env.ID)
			lockedBackups = len(bs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if lockedBackups != 1 {
			t.Errorf("the locked environment has %d backups after their expiry, want its 1 kept", lockedBackups)
		}
		// plain is linked to the same (revoked) policy: Locked too, so its
		// backup is kept as well, and can't be restored while it is.
		if _, err := f.p.RestoreBackup(f.ctx, plain.ID, pb.ID); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
			t.Errorf("RestoreBackup over a Locked environment after the expiry: %v, want EnvironmentLocked", err)
		}
		f.grant(t, w.pol.PrincipalID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, w.grantSc)
		f.health(t, w.pol, keyhold.HealthHealthy)
		for _, id := range []string{w.env.ID, plain.ID} {
			if err := f.p.EnableEnvironment(f.ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := f.p.PruneBackups(context.Background()); err != nil || n != 2 {
			t.Fatalf("PruneBackups after the re-enable = %d, %v; want 2", n, err)
		}
		cur := f.env(t, plain.ID).Epoch
		for _, wk := range f.wrapped(t, plain.ID) {
			if wk.Epoch != cur {
				t.Errorf("epoch %d's key outlived its last backup's expiry", wk.Epoch)
			}
		}
		f.check(t, plain.ID, data)
		f.check(t, w.env.ID, w.data)
	})
}

package platform

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// custodyRights is what a principal holds in TestCustodyPathsNeedReader: a
// platform administrator's directory role or not, and Reader on the
// customer's policy P1 (the one the environment is linked to) and on P2
// (a policy of the administrator's own vault) or not.
type custodyRights struct{ admin, readerP1, readerP2 bool }

func (r custodyRights) String() string {
	yn := map[bool]string{true: "yes", false: "no"}
	return fmt.Sprintf("admin=%s,readerP1=%s,readerP2=%s", yn[r.admin], yn[r.readerP1], yn[r.readerP2])
}

// custodyPath is one way to end, move, destroy or replace what an
// environment linked to P1 holds under the customer's key.
type custodyPath struct {
	name   string
	needP2 bool                   // the path also needs Reader on P2 (a swap to it)
	sku    keyhold.EnvironmentSKU // of the environment it works on
	do     func(ctx context.Context, env *keyhold.Environment) (*keyhold.Operation, error)
	// after checks the environment once the path was allowed (and its
	// operation, if any, succeeded).
	after func(t *testing.T, envID string)
}

// TestCustodyPathsNeedReader is the truth table of every path that ends
// or moves the custody of an environment linked to the customer's policy
// P1, or destroys or replaces the data held under it: unlink, swap to P2,
// reset, delete, restore a backup over it, copy another environment over
// it. Each runs as a principal holding every combination of a platform
// administrator's role, Reader on P1 and Reader on P2. A path is allowed
// exactly when the principal is an administrator with Reader on P1 (and,
// for the swap, on P2 too); every refusal is Forbidden, names what to ask
// for, and changes nothing: the environment's record (and with it its
// policy link), its wrapped keys, its operations, its backups and its
// audit log.
//
// The swap row is the custody break of issue 10: before the fix, an
// administrator with Reader on its own P2 alone could swap the customer's
// environment to it and then unlink it.
func TestCustodyPathsNeedReader(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		cust := f.newVault(t, "kv-customer", true)
		f.newKey(t, cust, "k")
		p1 := f.newPolicy(t, "pol-customer", cust, "k", nil)
		f.grantKey(t, p1, cust, "k")
		own := f.newVault(t, "kv-admin-own", true)
		f.newKey(t, own, "k")
		p2 := f.newPolicy(t, "pol-admin-own", own, "k", nil)
		f.grantKey(t, p2, own, "k")

		var combos []custodyRights
		principals := map[custodyRights]context.Context{}
		for _, admin := range []bool{false, true} {
			for _, r1 := range []bool{false, true} {
				for _, r2 := range []bool{false, true} {
					r := custodyRights{admin, r1, r2}
					role := keyhold.DirectoryRole("")
					if admin {
						role = keyhold.RolePowerPlatformAdministrator
					}
					ctx, pid := f.platformAdmin(t, role)
					if r1 {
						f.grant(t, pid, keyhold.RoleReader, p1.ID())
					}
					if r2 {
						f.grant(t, pid, keyhold.RoleReader, p2.ID())
					}
					combos = append(combos, r)
					principals[r] = ctx
				}
			}
		}

		// linked makes an environment of sku linked to P1 (by the
		// bootstrap administrator, who owns the subscription), with data
		// and a backup.
		n := 0
		linked := func(t *testing.T, sku keyhold.EnvironmentSKU) *keyhold.Environment {
			t.Helper()
			n++
			e := f.managedEnv(t, fmt.Sprintf("custody-%d", n))
			if sku != keyhold.SKUProduction {
				f.setEnv(t, e.ID, func(e *keyhold.Environment) { e.SKU = sku })
			}
			f.succeed(t, "link to P1", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, e.ID, p1.SystemID) })
			f.fill(t, e.ID, 3, 10)
			if _, err := f.p.CreateBackup(f.ctx, e.ID, "kept"); err != nil {
				t.Fatal(err)
			}
			return f.env(t, e.ID)
		}
		source := f.managedEnv(t, "copy-source") // under the platform's key: its data may go anywhere
		f.fill(t, source.ID, 2)

		underP1 := func(t *testing.T, envID string) {
			t.Helper()
			if e := f.env(t, envID); !strings.EqualFold(e.PolicyID, p1.ID()) || e.KeyManagedBy != keyhold.KeyManagedByCustomer {
				t.Errorf("after the operation: environment %+v, want it still under P1", e)
			}
		}
		paths := []custodyPath{
			{name: "unlink", sku: keyhold.SKUProduction,
				do: func(ctx context.Context, env *keyhold.Environment) (*keyhold.Operation, error) {
					return f.p.UnlinkPolicy(ctx, env.ID, p1.SystemID)
				},
				after: func(t *testing.T, envID string) {
					if e := f.env(t, envID); e.PolicyID != "" || e.KeyManagedBy != keyhold.KeyManagedByMicrosoft {
						t.Errorf("after unlink: %+v, want unlinked", e)
					}
				}},
			{name: "swap", needP2: true, sku: keyhold.SKUProduction,
				do: func(ctx context.Context, env *keyhold.Environment) (*keyhold.Operation, error) {
					return f.p.LinkPolicy(ctx, env.ID, p2.SystemID)
				},
				after: func(t *testing.T, envID string) {
					if e := f.env(t, envID); !strings.EqualFold(e.PolicyID, p2.ID()) {
						t.Errorf("after swap: %+v, want it linked to P2", e)
					}
				}},
			{name: "reset", sku: keyhold.SKUSandbox,
				do: func(ctx context.Context, env *keyhold.Environment) (*keyhold.Operation, error) {
					return f.p.ResetEnvironment(ctx, env.ID)
				},
				after: func(t *testing.T, envID string) {
					if e := f.env(t, envID); e.PolicyID != "" || e.KeyManagedBy != keyhold.KeyManagedByMicrosoft {
						t.Errorf("after reset: %+v, want unlinked", e)
					}
				}},
			{name: "delete", sku: keyhold.SKUProduction,
				do: func(ctx context.Context, env *keyhold.Environment) (*keyhold.Operation, error) {
					return nil, f.p.DeleteEnvironment(ctx, env.ID)
				},
				after: func(t *testing.T, envID string) {
					err := f.store.View(context.Background(), func(tx keyhold.Tx) error { _, err := tx.Environment(context.Background(), envID); return err })
					if keyhold.ErrorCode(err) != keyhold.CodeEnvironmentNotFound {
						t.Errorf("after delete: reading the environment: %v, want EnvironmentNotFound", err)
					}
				}},
			{name: "restore", sku: keyhold.SKUProduction,
				do: func(ctx context.Context, env *keyhold.Environment) (*keyhold.Operation, error) {
					bs, err := f.p.ListBackups(f.ctx, env.ID)
					if err != nil || len(bs) == 0 {
						return nil, fmt.Errorf("no backup to restore: %v", err)
					}
					return f.p.RestoreBackup(ctx, env.ID, bs[0].ID)
				},
				after: underP1},
			{name: "copy into", sku: keyhold.SKUProduction,
				do: func(ctx context.Context, env *keyhold.Environment) (*keyhold.Operation, error) {
					return f.p.CopyEnvironment(ctx, env.ID, source.ID)
				},
				after: underP1},
		}

		for _, path := range paths {
			t.Run(path.name, func(t *testing.T) {
				shared := linked(t, path.sku) // refusals change nothing, so they share one
				for _, r := range combos {
					allowed := r.admin && r.readerP1 && (!path.needP2 || r.readerP2)
					t.Run(r.String(), func(t *testing.T) {
						if allowed {
							env := linked(t, path.sku)
							op, err := path.do(principals[r], env)
							if err != nil {
								t.Fatalf("%s as %s: %v, want it allowed", path.name, r, err)
							}
							if op != nil {
								if op = f.wait(t, op); op.State != keyhold.OperationSucceeded {
									t.Fatalf("%s: operation ended %s: %s %s", path.name, op.State, op.ErrorCode, op.ErrorMsg)
								}
							}
							path.after(t, env.ID)
							return
						}
						before := f.custodyState(t, shared.ID)
						_, err := path.do(principals[r], shared)
						wantCode(t, err, keyhold.CodeForbidden)
						var mention []string
						switch {
						case !r.admin:
							mention = []string{"directory role"}
						case !r.readerP1:
							mention = []string{"Reader", p1.ID(), "key vault administrator"}
						default:
							mention = []string{"Reader", p2.ID()}
						}
						for _, m := range mention {
							if msg := keyhold.ErrorMessage(err); !strings.Contains(msg, m) {
								t.Errorf("message %q does not mention %q", msg, m)
							}
						}
						if after := f.custodyState(t, shared.ID); after != before {
							t.Errorf("the refusal changed the environment:\nbefore %s\nafter  %s", before, after)
						}
					})
				}
			})
		}

		// The legacy BYOK route (issue 14) is one more way to move an
		// environment's key: it never takes one off a customer's key, not
		// even for a principal with every right here, and the tenant's
		// Active BYOK key is there so that nothing else refuses first.
		t.Run("byok apply", func(t *testing.T) {
			env := linked(t, keyhold.SKUProduction)
			f.byokTenant(t)
			for _, r := range combos {
				before := f.custodyState(t, env.ID)
				_, err := f.p.ApplyBYOK(principals[r], env.ID)
				if r.admin {
					wantCode(t, err, keyhold.CodeConflict)
					if msg := keyhold.ErrorMessage(err); !strings.Contains(msg, "customer-managed key") {
						t.Errorf("as %s: message %q does not name the customer-managed key", r, msg)
					}
				} else {
					wantCode(t, err, keyhold.CodeForbidden)
				}
				if after := f.custodyState(t, env.ID); after != before {
					t.Errorf("byok apply as %s changed the environment:\nbefore %s\nafter  %s", r, before, after)
				}
			}
			underP1(t, env.ID)
		})
	})
}

// custodyState is everything a refused custody path must leave as it was:
// the environment's record (its policy link included), its wrapped keys,
// its operations, its data, its backups and its audit log.
func (f *cmkFixture) custodyState(t *testing.T, envID string) string {
	t.Helper()
	s := f.state(t, envID)
	return fmt.Sprintf("%+v\n%s\naudit %v", s, f.backupState(t, envID), f.auditActions(t, envID))
}

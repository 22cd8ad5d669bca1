package platform

import (
	"context"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestBackupRestoresFlows: a backup holds the environment's flows, their
// callback keys and schedules, and its connections. After a flow and a
// connection are deleted and the environment linked to a customer key
// (the backup's epoch-1 items keep their wrapped key), restoring the
// backup brings them back re-sealed under the customer key's epoch (the
// non-OAuth connection under the platform partition); the flow runs, its
// earlier callback URL still works, the recurrence has its schedule, the
// connection's credentials open. Runs are not restored. Without the
// backup's flow items, the restored environment has no flow.
func TestBackupRestoresFlows(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		ctx := context.Background()
		pol, admin := cmkReady(t, f, "backup-flows")
		env := f.managedEnv(t, "flows-backup")
		fl := startFlows(t, f)
		putFlow(t, fl, f.ctx, env.ID, "echo", "Echo", echoFlow)
		putFlow(t, fl, f.ctx, env.ID, "tick", "Tick", `{"triggers":{"every":{"type":"Recurrence","recurrence":{"frequency":"Day","interval":1}}},"actions":{"C":{"type":"Compose","inputs":1}}}`)
		cb, err := fl.CallbackURL(f.ctx, env.ID, "echo", "manual", false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fl.PutConnection(f.ctx, env.ID, "shared_commondataserviceforapps", "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		if _, err := fl.PutConnection(f.ctx, env.ID, "shared_http", "api", &keyhold.ConnectionInput{Kind: keyhold.ConnectionNonOAuth, Parameters: map[string]string{"apiKey": "k"}}); err != nil {
			t.Fatal(err)
		}
		runFlow(t, fl, f.ctx, env.ID, "echo", "before")

		b, err := f.p.CreateBackup(f.ctx, env.ID, "with flows")
		if err != nil {
			t.Fatal(err)
		}
		if err := fl.DeleteFlow(f.ctx, env.ID, "echo"); err != nil {
			t.Fatal(err)
		}
		if err := fl.DeleteConnection(f.ctx, env.ID, "shared_http", "api"); err != nil {
			t.Fatal(err)
		}
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, env.ID, pol.SystemID) })
		e := f.env(t, env.ID)
		if e.Epoch == 1 {
			t.Fatalf("the link did not re-key: epoch %d", e.Epoch)
		}
		f.succeed(t, "restore", func() (*keyhold.Operation, error) { return f.p.RestoreBackup(f.ctx, env.ID, b.ID) })

		got, err := fl.GetFlow(f.ctx, env.ID, "echo")
		if err != nil || got.DisplayName != "Echo" {
			t.Fatalf("flow after restore: %+v, %v", got, err)
		}
		if runs, err := fl.ListRuns(f.ctx, env.ID, "echo"); err != nil || len(runs) != 0 {
			t.Fatalf("runs after restore: %d, %v (run history is not backed up)", len(runs), err)
		}
		_ = f.store.View(ctx, func(tx keyhold.Tx) error {
			set, err := tx.EnvFlowSet(ctx, env.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Flows) != 2 || len(set.Keys) != 1 || len(set.Schedules) != 1 || len(set.Connections) != 2 {
				t.Fatalf("restored set: %d flows, %d keys, %d schedules, %d connections", len(set.Flows), len(set.Keys), len(set.Schedules), len(set.Connections))
			}
			for _, fr := range set.Flows {
				if fr.Epoch != e.Epoch {
					t.Errorf("flow %s under epoch %d, want the customer key's %d", fr.ID, fr.Epoch, e.Epoch)
				}
			}
			if set.Keys[0].Epoch != e.Epoch {
				t.Errorf("callback key under epoch %d", set.Keys[0].Epoch)
			}
			for _, c := range set.Connections {
				want := e.Epoch
				if c.Kind == keyhold.ConnectionNonOAuth {
					want = keyhold.PlatformEpoch
				}
				if c.Epoch != want {
					t.Errorf("connection %s under epoch %d, want %d", c.Name, c.Epoch, want)
				}
				if c.Kind == keyhold.ConnectionNonOAuth {
					pt, err := f.p.Sealer.OpenPlatform(ctx, env.ID, keyhold.StoreConnections, keyhold.ConnectionItemID(c.API, c.Name), c.Version, c.Sealed)
					if err != nil || !strings.Contains(string(pt), `"apiKey":"k"`) {
						t.Errorf("the restored non-OAuth connection's credentials: %v", err)
					}
				}
			}
			return nil
		})
		resp, err := invokeAt(ctx, fl, cb.Value, env.ID, "echo", `{"text":"restored"}`)
		if err != nil || resp.StatusCode != 200 || resp.Body != "echo restored" {
			t.Fatalf("the earlier callback URL after restore: %+v, %v", resp, err)
		}
		if c, err := fl.GetConnection(f.ctx, env.ID, "shared_http", "api"); err != nil || c.Root != "platform" {
			t.Fatalf("non-OAuth connection after restore: %+v, %v", c, err)
		}
	})
}

// TestCopyCarriesFlows: copying an environment into one linked to a
// customer key brings its flows and connections along, re-sealed under
// the target's key (the non-OAuth connection under the target's platform
// partition); the copied flow runs there, and answers at the target's own
// callback URL.
func TestCopyCarriesFlows(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		ctx := context.Background()
		pol, admin := cmkReady(t, f, "copy-flows")
		src := f.managedEnv(t, "flows-source")
		dst := f.managedEnv(t, "flows-target")
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, dst.ID, pol.SystemID) })
		fl := startFlows(t, f)
		putFlow(t, fl, f.ctx, src.ID, "echo", "Echo", echoFlow)
		if _, err := fl.PutConnection(f.ctx, src.ID, "shared_http", "api", &keyhold.ConnectionInput{Kind: keyhold.ConnectionNonOAuth, Parameters: map[string]string{"apiKey": "k"}}); err != nil {
			t.Fatal(err)
		}
		f.succeed(t, "copy", func() (*keyhold.Operation, error) { return f.p.CopyEnvironment(admin, dst.ID, src.ID) })
		e := f.env(t, dst.ID)
		_ = f.store.View(ctx, func(tx keyhold.Tx) error {
			set, err := tx.EnvFlowSet(ctx, dst.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Flows) != 1 || set.Flows[0].Epoch != e.Epoch || len(set.Connections) != 1 || set.Connections[0].Epoch != keyhold.PlatformEpoch {
				t.Fatalf("copied set: %+v (target epoch %d)", set, e.Epoch)
			}
			return nil
		})
		cb, err := fl.CallbackURL(f.ctx, dst.ID, "echo", "manual", false)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := invokeAt(ctx, fl, cb.Value, dst.ID, "echo", `{"text":"copied"}`)
		if err != nil || resp.StatusCode != 200 || resp.Body != "echo copied" {
			t.Fatalf("the copied flow at the target's URL: %+v, %v", resp, err)
		}
		if _, err := fl.GetFlow(f.ctx, src.ID, "echo"); err != nil {
			t.Fatalf("the source's flow after the copy: %v", err)
		}
	})
}

package platform

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestRekeyMovesFlows: linking an environment to a customer key re-keys
// its flows' items (a definition, a callback key, an OAuth connection) to
// the new epoch before the old epoch's key is destroyed, so they all read
// back afterwards; the non-OAuth connection stays under the platform key,
// and the finished run's state goes to the link's pre-migration partition
// (issue 16), out of the run listing but readable by an administrator.
// Without the walk, the destroyed epoch leaves them unreadable.
func TestRekeyMovesFlows(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		ctx := context.Background()
		pol, admin := cmkReady(t, f, "flows")
		env := f.managedEnv(t, "flows-prod")
		fl := startFlows(t, f)
		putFlow(t, fl, f.ctx, env.ID, "echo", "Echo", echoFlow)
		cb, err := fl.CallbackURL(f.ctx, env.ID, "echo", "manual", false)
		if err != nil {
			t.Fatal(err)
		}
		runID := runFlow(t, fl, f.ctx, env.ID, "echo", "before")
		if _, err := fl.PutConnection(f.ctx, env.ID, "shared_commondataserviceforapps", "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		if _, err := fl.PutConnection(f.ctx, env.ID, "shared_http", "api", &keyhold.ConnectionInput{Kind: keyhold.ConnectionNonOAuth, Parameters: map[string]string{"apiKey": "k"}}); err != nil {
			t.Fatal(err)
		}

		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, env.ID, pol.SystemID) })
		e := f.env(t, env.ID)
		if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].Epoch != e.Epoch || e.Epoch == 1 {
			t.Fatalf("after link: epoch %d, keys %v", e.Epoch, describeKeys(wks))
		}
		_ = f.store.View(ctx, func(tx keyhold.Tx) error {
			fr, _ := tx.Flow(ctx, env.ID, "echo")
			k, _ := tx.FlowKey(ctx, env.ID, "echo")
			_, rerr := tx.FlowRun(ctx, env.ID, "echo", runID)
			c1, _ := tx.Connection(ctx, env.ID, "shared_commondataserviceforapps", "dv")
			c2, _ := tx.Connection(ctx, env.ID, "shared_http", "api")
			if fr.Epoch != e.Epoch || k.Epoch != e.Epoch || c1.Epoch != e.Epoch || c2.Epoch != keyhold.PlatformEpoch {
				t.Errorf("epochs after link: flow %d, key %d, oauth %d, non-oauth %d; want %d and 0", fr.Epoch, k.Epoch, c1.Epoch, c2.Epoch, e.Epoch)
			}
			if keyhold.ErrorCode(rerr) != keyhold.CodeFlowRunNotFound {
				t.Errorf("the finished run is still a run after the link: %v", rerr)
			}
			return nil
		})
		got, err := fl.GetFlow(f.ctx, env.ID, "echo")
		if err != nil || got.DisplayName != "Echo" {
			t.Fatalf("flow after link: %+v, %v", got, err)
		}
		pre, err := f.p.PreMigration.PreMigrationRuns(admin, env.ID)
		if err != nil || len(pre) != 1 || pre[0].ID != runID || !strings.Contains(string(pre[0].Content), "echo before") {
			t.Fatalf("pre-migration runs after link: %+v, %v", pre, err)
		}
		cb2, err := fl.CallbackURL(f.ctx, env.ID, "echo", "manual", false)
		if err != nil || cb2.Value != cb.Value {
			t.Fatalf("callback URL after link: %v (want the same key: %v)", err, cb2 != nil && cb2.Value == cb.Value)
		}
		if _, err := fl.RunTrigger(f.ctx, env.ID, "echo", "manual", json.RawMessage(`{"text":"after"}`)); err != nil {
			t.Fatalf("a run after the link: %v", err)
		}
	})
}

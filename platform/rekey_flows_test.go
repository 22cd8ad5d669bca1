package platform

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
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

// linkingSealer is the platform's sealer, calling then (once) right after
// it seals the first run state: between a new run's seal and its insert.
type linkingSealer struct {
	keyhold.EnvironmentSealer
	then atomic.Pointer[func()]
}

func (s *linkingSealer) SealUnder(ctx context.Context, envID, store, item string, version uint64, epoch uint32, pt []byte) ([]byte, error) {
	ct, err := s.EnvironmentSealer.SealUnder(ctx, envID, store, item, version, epoch, pt)
	if store == keyhold.StoreRuns {
		if f := s.then.Swap(nil); f != nil {
			(*f)()
		}
	}
	return ct, err
}

// TestNewRunSealedAgainAfterEpochMoved: a link that moves the
// environment to a new epoch (and destroys the old one's key) between a
// new run's first state being sealed, under the epoch its flow was opened
// at, and the run's insert doesn't lose the run nor store it under the
// destroyed epoch: the insert's check sees the epoch moved, the state is
// sealed again under the new one, and the run completes.
func TestNewRunSealedAgainAfterEpochMoved(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		pol, admin := cmkReady(t, f, "moving")
		env := f.managedEnv(t, "flows-moving")
		ls := &linkingSealer{EnvironmentSealer: f.p.Sealer}
		fl := startFlowsWith(t, f, ls)
		putFlow(t, fl, f.ctx, env.ID, "echo", "Echo", echoFlow)
		before := f.env(t, env.ID).Epoch
		link := func() {
			f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, env.ID, pol.SystemID) })
		}
		ls.then.Store(&link)
		runID := runFlow(t, fl, f.ctx, env.ID, "echo", "during")
		if ls.then.Load() != nil {
			t.Fatal("no run state was sealed: the link did not run where this test means")
		}
		after := f.env(t, env.ID).Epoch
		if after == before {
			t.Fatalf("the link left the environment at epoch %d", after)
		}
		if err := f.store.View(f.ctx, func(tx keyhold.Tx) error {
			r, err := tx.FlowRun(f.ctx, env.ID, "echo", runID)
			if err == nil && r.Epoch != after {
				t.Errorf("the run is stored under epoch %d, want the new %d", r.Epoch, after)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		out, err := fl.GetRun(f.ctx, env.ID, "echo", runID)
		if err != nil || out.Status != keyhold.RunSucceeded {
			t.Fatalf("the run after the link: %+v, %v", out, err)
		}
	})
}

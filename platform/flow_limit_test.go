package platform

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows"
)

// TestCMKFlowEnvironmentsLimitDefault: with no setting, a tenant may have
// spec 004's 25 environments with flows under customer keys; a setting
// replaces it.
func TestCMKFlowEnvironmentsLimitDefault(t *testing.T) {
	if DefaultCMKFlowEnvironmentsLimit != 25 {
		t.Fatalf("default %d, want spec 004's 25", DefaultCMKFlowEnvironmentsLimit)
	}
	for configured, want := range map[int]int{0: 25, -1: 25, 1: 1, 40: 40} {
		if got := flowEnvLimit(configured); got != want {
			t.Errorf("flowEnvLimit(%d) = %d, want %d", configured, got, want)
		}
	}
}

// TestCMKFlowEnvironmentsLimit: with the limit at 1, the first environment
// with flows links; the second is refused before anything changes (no
// operation, still on the platform key, same epoch), with a message naming
// the limit and the operator's flag; an environment without flows still
// links.
func TestCMKFlowEnvironmentsLimit(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		f.p.core.flowEnvLimit = 1
		pol, admin := cmkReady(t, f, "flowlimit")
		fl, err := flows.New(flows.Config{Store: f.store, Sealer: f.p.Sealer, Data: f.p, Clock: f.clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fl.Close)
		withFlow := func(name string) *keyhold.Environment {
			env := f.managedEnv(t, name)
			dn := "Echo"
			def := `{"$schema":"https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#","contentVersion":"1.0.0.0",
 "triggers":{"manual":{"type":"Request","kind":"Button","inputs":{"schema":{"type":"object"}}}},
 "actions":{"Compose":{"type":"Compose","inputs":"x","runAfter":{}}}}`
			if _, err := fl.PutFlow(f.ctx, env.ID, "echo", &keyhold.FlowInput{DisplayName: &dn, Definition: json.RawMessage(def)}); err != nil {
				t.Fatal(err)
			}
			return env
		}
		first, second := withFlow("flows-one"), withFlow("flows-two")
		f.succeed(t, "first link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, first.ID, pol.SystemID) })

		before := f.env(t, second.ID)
		_, err = f.p.LinkPolicy(admin, second.ID, pol.SystemID)
		if keyhold.ErrorCode(err) != keyhold.CodeCMKFlowEnvironmentsLimit {
			t.Fatalf("second link: %v, want %s", err, keyhold.CodeCMKFlowEnvironmentsLimit)
		}
		for _, want := range []string{"limit of 1", "platform operator", "--cmk-flow-environments-limit"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("refusal %q does not say %q", err, want)
			}
		}
		after := f.env(t, second.ID)
		if ops := f.operations(t, second.ID); len(ops) != 0 {
			t.Errorf("refused link left operations %v", ops)
		}
		if after.PolicyID != "" || after.KeyManagedBy != before.KeyManagedBy || after.Epoch != before.Epoch || after.EncryptionStatus != before.EncryptionStatus {
			t.Errorf("refused link changed the environment: before %+v, after %+v", before, after)
		}

		plain := f.managedEnv(t, "no-flows")
		f.succeed(t, "link without flows", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, plain.ID, pol.SystemID) })
	})
}

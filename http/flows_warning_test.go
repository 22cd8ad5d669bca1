package http

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestCMKFlowWarningJSON: the environment's answer and its
// environmentsWithPolicies row carry cmkFlowWarning {message,
// platformKeyFlows} while some flows are on the platform key, leave it
// out otherwise, and the client reads the count back.
func TestCMKFlowWarningJSON(t *testing.T) {
	for _, n := range []int{2, 0} {
		e := &keyhold.Environment{ID: "e1", DisplayName: "one", PolicyID: "p", PolicySystemID: "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/g", PlatformKeyFlows: n}
		ej, _ := json.Marshal(toEnvironmentJSON(e))
		lj, _ := json.Marshal(toPolicyLinkJSON(&keyhold.PolicyLink{Environment: e}))
		want := `"cmkFlowWarning":{"message":"` + keyhold.FlowWarningMessage + `","platformKeyFlows":2}`
		for what, got := range map[string]string{"environment": string(ej), "environmentsWithPolicies row": string(lj)} {
			if strings.Contains(got, want) != (n > 0) || strings.Contains(got, "cmkFlowWarning") != (n > 0) {
				t.Errorf("%s with %d flows on the platform key: %s", what, n, got)
			}
		}
		var envBack environmentJSON
		var linkBack policyLinkJSON
		if err := json.Unmarshal(ej, &envBack); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(lj, &linkBack); err != nil {
			t.Fatal(err)
		}
		if a, b := fromEnvironmentJSON(&envBack).PlatformKeyFlows, fromPolicyLinkJSON(&linkBack).Environment.PlatformKeyFlows; a != n || b != n {
			t.Errorf("client read %d and %d, want %d", a, b, n)
		}
	}
}

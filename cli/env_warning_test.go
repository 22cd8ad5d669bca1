package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestPrintEnvironmentFlowWarning: `keyhold env show` gives spec 004's
// warning with the count and the command that lists the flows, and only
// when the environment has flows on the platform key.
func TestPrintEnvironmentFlowWarning(t *testing.T) {
	for _, n := range []int{3, 0} {
		var out bytes.Buffer
		if err := printEnvironment(&out, FormatTable, &keyhold.Environment{ID: "e1", DisplayName: "one", PolicyID: "p", PlatformKeyFlows: n}); err != nil {
			t.Fatal(err)
		}
		want := "Warning: " + keyhold.FlowWarningMessage + " (3 flows; keyhold flow list --env e1 --protected-by platform)"
		if got := squash(out.String()); strings.Contains(got, want) != (n > 0) || strings.Contains(got, "Warning:") != (n > 0) {
			t.Errorf("%d flows on the platform key: printed %q", n, got)
		}
	}
}

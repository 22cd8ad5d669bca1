package keyhold

import "testing"

// TestShowPause: a paused operation shows its reason as its error message,
// whether its row holds the message (paused before the reason was stored
// once) or not; any other operation keeps its message.
func TestShowPause(t *testing.T) {
	const reason = "environment e1 is locked"
	cases := []struct {
		name string
		op   Operation
		want string
	}{
		{"paused", Operation{State: OperationRunning, Phase: OperationPaused, PhaseReason: reason}, PausedPrefix + reason},
		{"paused, old row", Operation{State: OperationRunning, Phase: OperationPaused, PhaseReason: reason, ErrorMsg: PausedPrefix + reason}, PausedPrefix + reason},
		{"rolling back", Operation{State: OperationRunning, Phase: OperationRollingBack, PhaseReason: "key gone", ErrorMsg: "key gone"}, "key gone"},
		{"running", Operation{State: OperationRunning, Phase: OperationInProgress}, ""},
		{"failed", Operation{State: OperationFailed, ErrorMsg: "key gone"}, "key gone"},
		{"finished, phase left over", Operation{State: OperationSucceeded, Phase: OperationPaused, PhaseReason: reason}, ""},
	}
	for _, c := range cases {
		op := c.op
		op.ShowPause()
		if op.ErrorMsg != c.want {
			t.Errorf("%s: ErrorMsg = %q, want %q", c.name, op.ErrorMsg, c.want)
		}
	}
	var none *Operation
	none.ShowPause() // a nil operation (a failed read) is left alone
}

package http

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestPausedOperationJSON: a paused operation (Running in phase Paused,
// no error code, its reason, as package ops records it) shows status Paused and
// why in statusMessage, keeps state.id Running (pollers go on polling) and
// no error; the Go client reads it back as the store holds it, phase
// included. An operation rolling back or failed still shows its error,
// whatever its message says.
func TestPausedOperationJSON(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const why = "Paused: environment e-1 is locked: the customer-managed key of enterprise policy p is not accessible; an administrator re-enables the environment; the operation then resumes where it paused"
	base := keyhold.Operation{ID: "op-1", TenantID: "t-1", Kind: keyhold.OpLink, Target: "e-1", State: keyhold.OperationRunning,
		Step: "rekey", CreatedBy: "admin", CreatedAt: now, UpdatedAt: now}
	cases := []struct {
		name                 string
		mod                  func(op *keyhold.Operation)
		status, message, err string
	}{
		{"paused", func(op *keyhold.Operation) {
			op.Phase, op.PhaseReason, op.ErrorMsg = keyhold.OperationPaused, strings.TrimPrefix(why, keyhold.PausedPrefix), why
		}, "Paused", why, ""},
		{"running", func(op *keyhold.Operation) { op.Phase = keyhold.OperationInProgress }, "Running", "", ""},
		{"rolling back", func(op *keyhold.Operation) {
			op.ErrorCode, op.ErrorMsg = keyhold.CodeForbidden, "Paused: not a pause, a failure's message"
			op.Phase, op.PhaseReason = keyhold.OperationRollingBack, op.ErrorMsg
		}, "Running", "", keyhold.CodeForbidden},
		{"failed", func(op *keyhold.Operation) {
			op.State, op.Step, op.FinishedAt = keyhold.OperationFailed, "", now
			op.ErrorCode, op.ErrorMsg = keyhold.CodeForbidden, "no access"
		}, "Failed", "", keyhold.CodeForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op := base
			tc.mod(&op)
			b, err := json.Marshal(toOperationJSON(&op))
			if err != nil {
				t.Fatal(err)
			}
			var raw map[string]any
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			if got := raw["state"].(map[string]any)["id"]; got != string(op.State) {
				t.Errorf("state.id = %v, want %s: %s", got, op.State, b)
			}
			if raw["status"] != tc.status {
				t.Errorf("status = %v, want %s: %s", raw["status"], tc.status, b)
			}
			if msg, _ := raw["statusMessage"].(string); msg != tc.message {
				t.Errorf("statusMessage = %q, want %q", msg, tc.message)
			}
			e, hasErr := raw["error"].(map[string]any)
			if (tc.err != "") != hasErr || (hasErr && e["code"] != tc.err) {
				t.Errorf("error = %v, want code %q: %s", raw["error"], tc.err, b)
			}
			var j operationJSON
			if err := json.Unmarshal(b, &j); err != nil {
				t.Fatal(err)
			}
			back := fromOperationJSON(&j)
			if back.State != op.State || back.ErrorCode != op.ErrorCode || back.ErrorMsg != op.ErrorMsg || operationPaused(back) != (tc.status == "Paused") {
				t.Errorf("client read back %s %q %q (paused %v), want %s %q %q", back.State, back.ErrorCode, back.ErrorMsg, operationPaused(back), op.State, op.ErrorCode, op.ErrorMsg)
			}
			if ph, _ := raw["phase"].(string); ph != string(op.Phase) || back.Phase != op.Phase || back.PhaseReason != op.PhaseReason {
				t.Errorf("phase = %v, read back as %q %q; want %q %q", raw["phase"], back.Phase, back.PhaseReason, op.Phase, op.PhaseReason)
			}
		})
	}
}

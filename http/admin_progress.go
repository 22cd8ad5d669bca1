package http

import (
	"encoding/json"
	nethttp "net/http"

	"github.com/keyhold/keyhold"
)

// The admin center's progress of an environment's operations (issue 17):
// its encryption operation (link, swap, unlink, re-key) and its data
// operation (restore, copy, reset), each with done of total, shown on the
// environment's page. While one runs, the page's script (admin.js, allowed
// by the CSP as the page's own file) polls its status every second and
// reloads the page when it ends, so the end state shows without a
// JavaScript framework; without the script the page shows where it was
// when loaded, and a reload moves it on.

// envOp is one operation of an environment, as its page shows it.
type envOp struct {
	Op      *keyhold.Operation
	What    string // "Link", "Swap", "Unlink", "Re-key", "Restore", …
	Percent int
	Running bool
}

// opWhat names an operation for people: a link that leaves another
// policy is a swap.
func opWhat(op *keyhold.Operation) string {
	switch op.Kind {
	case keyhold.OpLink:
		var in struct {
			From string `json:"fromPolicyId"`
		}
		if json.Unmarshal(op.Input, &in) == nil && in.From != "" {
			return "Swap"
		}
		return "Link"
	case keyhold.OpUnlink:
		return "Unlink"
	case keyhold.OpRekey:
		return "Re-key"
	case keyhold.OpRotate:
		return "Rotation"
	case keyhold.OpRestore:
		return "Restore"
	case keyhold.OpCopy:
		return "Copy"
	case keyhold.OpReset:
		return "Reset"
	}
	return op.Kind
}

// adminEnvSections fills the sections of d's page that come from other
// services than the environment's: its operations, its backups and its
// flows that stay on the platform key. A section the caller may not read
// says so; only a server fault fails the page.
func (s *Server) adminEnvSections(r *nethttp.Request, d *envPageData) error {
	if s.CMK != nil {
		for _, id := range []string{d.Env.LastOperationID, d.Env.RestoreOperationID} {
			if id == "" {
				continue
			}
			op, err := s.CMK.GetOperation(r.Context(), id)
			if err != nil {
				if _, _, err := adminRefusal(err); err != nil {
					return err
				}
				continue
			}
			d.Ops = append(d.Ops, &envOp{Op: op, What: opWhat(op), Percent: percent(op), Running: op.State == keyhold.OperationRunning})
		}
	}
	if err := s.adminEnvBackups(r, d); err != nil {
		return err
	}
	return s.adminEnvFlows(r, d)
}

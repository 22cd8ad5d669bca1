//go:build keyhold_faults

package platform

import "github.com/keyhold/keyhold/ops"

// flowsFault is one of the flows migration's fault points, armed: the
// crash tests kill the server there, mid-step (rekey_flows.go).
func flowsFault(point string) { ops.Fault(point) }

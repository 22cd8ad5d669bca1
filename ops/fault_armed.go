//go:build keyhold_faults

// Fault points that kill the process exist only in builds with the
// keyhold_faults tag: the crash tests' (scripts/test.sh passes the tag). A
// production binary, built without it, has no code that kills itself
// whatever its environment holds.

package ops

import (
	"os"
	"strings"
)

// Environment variables that arm fault points.
const (
	// FaultEnv names the fault points at which the process kills itself:
	// one name, or several separated by commas.
	FaultEnv = "KEYHOLD_FAULT"
	// FaultOnceEnv, if set, names a file that an armed fault point
	// creates before it kills the process; a fault point fires only if
	// it can create that file (it doesn't exist yet). Replicas started
	// with the same FaultEnv and FaultOnceEnv then lose only the first of
	// them to reach the point, and the others carry on.
	FaultOnceEnv = "KEYHOLD_FAULT_ONCE"
)

// Fault kills the process with SIGKILL, as kill -9 does, if the FaultEnv
// environment variable names the point name (see FaultOnceEnv). No deferred
// function runs, no buffer is flushed and no transaction is committed or
// rolled back: the process just stops, as on a crash. Otherwise, the normal
// case, it does nothing.
//
// Fault points are for crash tests; a test binary started without FaultEnv
// never fires one, and a build without the keyhold_faults tag has no Fault.
func Fault(name string) {
	v := os.Getenv(FaultEnv)
	if v == "" || !armed(v, name) {
		return
	}
	if once := os.Getenv(FaultOnceEnv); once != "" {
		f, err := os.OpenFile(once, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return // fired already, in this process or another
		}
		f.Close()
	}
	killSelf()
}

// fault is where the Runner passes a fault point: Fault in this build.
func fault(name string) { Fault(name) }

func armed(list, name string) bool {
	for f := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(f) == name {
			return true
		}
	}
	return false
}

// FaultPoints returns the names of the fault points that running an
// operation of kind k (registered under the name kind) passes when no step
// fails, in order. For each step S:
//
//   - "<kind>:before:S": before S runs (each time it runs);
//   - "<kind>:after:S": after S returned without error, its effects
//     written, before the Runner records that it ended;
//   - "<kind>:persisted:S": after the Runner recorded it.
func FaultPoints(kind string, k Kind) []string {
	var ps []string
	for _, s := range k.Steps {
		ps = append(ps, faultBefore(kind, s.Name), faultAfter(kind, s.Name), faultPersisted(kind, s.Name))
	}
	return ps
}

// RollbackFaultPoints returns the names of the fault points that rolling
// back an operation of kind passes, in order: "<kind>:before:rollback"
// (after the failure is recorded, before Kind.Rollback runs),
// "<kind>:after:rollback" (after Rollback returned without error, before
// the operation is recorded as Failed) and "<kind>:persisted:rollback"
// (after that).
func RollbackFaultPoints(kind string) []string {
	return []string{faultBefore(kind, RollbackStep), faultAfter(kind, RollbackStep), faultPersisted(kind, RollbackStep)}
}

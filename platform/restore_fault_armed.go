//go:build keyhold_faults

package platform

import "github.com/keyhold/keyhold/ops"

// stagedPageFault is the fault point faultStagedPage, armed: the crash
// tests kill the server there.
func stagedPageFault() { ops.Fault(faultStagedPage) }

// backupPageFault is the fault point faultBackupPage, armed.
func backupPageFault() { ops.Fault(faultBackupPage) }

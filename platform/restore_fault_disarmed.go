//go:build !keyhold_faults

package platform

// stagedPageFault does nothing: a build without the keyhold_faults tag (every
// production build) has no fault points that kill the process.
func stagedPageFault() {}

// backupPageFault does nothing outside the keyhold_faults build.
func backupPageFault() {}

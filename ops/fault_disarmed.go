//go:build !keyhold_faults

package ops

// fault does nothing: a build without the keyhold_faults tag (every
// production build) has no fault points that kill the process.
func fault(string) {}

// Fault does nothing either: the fault points a step names inside itself
// (between the pages of a long step) are disarmed with the others.
func Fault(string) {}

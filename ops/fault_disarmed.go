//go:build !keyhold_faults

package ops

// fault does nothing: a build without the keyhold_faults tag (every
// production build) has no fault points that kill the process.
func fault(string) {}

//go:build !keyhold_faults

package platform

// flowsFault does nothing outside the keyhold_faults build.
func flowsFault(string) {}

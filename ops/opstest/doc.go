// Package opstest is a crash-test harness for durable operations (package
// ops). It runs Runners in child processes, which are the test binary run
// again (the "TestHelperProcess" pattern), lets one die by SIGKILL at an
// ops fault point, starts a replacement, and hands the test the finished
// operation and the store to check its invariants: after a kill -9 at any
// step boundary, the operation must still finish, or roll back, with every
// item readable.
//
// A test package using it calls Main from its TestMain, with the Setup that
// registers its kinds, so that a child process runs a Runner instead of the
// tests:
//
//	func TestMain(m *testing.M) { opstest.Main(m, setup) }
//
// and then, per backend and fault point:
//
//	res := opstest.Crash{Backend: opstest.SQLite(t), Setup: setup, Fault: p}.Run(t, op)
//
// It needs the fault points of package ops, which exist only in builds
// with the keyhold_faults tag: its code and the crash tests that use it
// carry that tag (go test -tags keyhold_faults; scripts/test.sh passes it).
// Without the tag the package is empty.
package opstest

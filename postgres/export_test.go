package postgres

import "time"

// SetListenIdle sets how long a Broadcaster made from now on waits for a
// notification before it pings, and returns a function that restores it.
func SetListenIdle(d time.Duration) (restore func()) {
	old := listenIdle
	listenIdle = d
	return func() { listenIdle = old }
}

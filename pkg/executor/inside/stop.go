package inside

import "time"

// StopWait bounds how long an executor waits for a wrapped command to end
// after SIGKILL before it stops reading its output.
const StopWait = 3 * time.Second

// Stop ends a command run under __kk-exec from outside the container. signal
// runs `__kk-signal SIG PIDFILE` in the container (through an exec). Stop
// sends TERM, waits grace for done, then sends KILL every 200 ms (the wrapper
// may not have recorded its group yet when the first one goes) until done is
// closed or StopWait has passed. It reports whether the command ended.
func Stop(signal func(sig string), grace time.Duration, done <-chan struct{}) bool {
	signal("TERM")
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	}
	deadline := time.NewTimer(StopWait)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		signal("KILL")
		select {
		case <-done:
			return true
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
}

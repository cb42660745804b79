package agent

import (
	"log/slog"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/redact"
	"github.com/kraken-go/kk/pkg/tools"
)

// redaction is what the outbox needs to keep a job's secrets out of
// everything it sends: the matcher of the assignment's secrets, and the
// steps that run in the background (their output goes on after the step
// reported its end, so a possible partial secret is held until the job ends
// instead of being released at the step's end).
type redaction struct {
	m          *redact.Matcher
	background map[int]bool
}

// newRedaction builds the redaction of an assignment. Secrets too short to
// redact are named (by count, never by value) in the agent's log.
func newRedaction(asg api.Assignment, log *slog.Logger) redaction {
	m := redact.New(asg.Secrets)
	if n := m.Skipped(); n > 0 {
		log.Warn("secrets shorter than 4 bytes are not redacted from the job's output (redacting them would garble the logs): use longer secrets",
			"count", n, "min_length", redact.MinLen)
	}
	bg := map[int]bool{}
	for _, st := range asg.Steps {
		if b, err := tools.Bool(st.Fields, "background", false); err == nil && b {
			bg[st.Index] = true
		}
	}
	return redaction{m: m, background: bg}
}

// text redacts a whole message (step result, job completion).
func (r redaction) text(s string) string { return r.m.Redact(s) }

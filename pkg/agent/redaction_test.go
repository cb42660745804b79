package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/redact"
)

const testSecret = "s3cr3t-T0ken-value"

// TestJobOutputIsRedacted runs steps that print a secret raw, one
// character per write, base64-encoded, in a failing step's output and in the
// background: the fake server never receives it.
func TestJobOutputIsRedacted(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t)
	builtinAgent(t, s, func(c *Config) { c.LogChunkSize = 5 })
	env := map[string]any{"TOKEN": testSecret}
	asg := assignment(1,
		shell(`echo "raw $TOKEN"`, "env", env),
		shell(`for i in $(seq 0 $((${#TOKEN}-1))); do printf '%s' "${TOKEN:$i:1}"; done; echo`, "env", env, "shell_exe", "/bin/bash"),
		shell(`printf '%s' "$TOKEN" | base64; printf '%s' "$TOKEN" | base64 | tr -d '=\n'; echo`, "env", env),
		shell(`echo "$TOKEN" >&2; exit 4`, "env", env, "when", "always"),
	)
	asg.Secrets = []string{testSecret, "ab"}
	s.addJob(asg)
	c := s.completed(1, 30*time.Second)
	assert.Equal(t, ci.JobFailed, c.Result)
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.job(1)
	wants := []string{"raw ***\n", "***\n", "***\n***\n", "***\n"}
	for i, want := range wants {
		assert.Equal(t, want, j.logText(i), "step %d", i)
		for _, chunk := range j.logs[i] {
			assert.LessOrEqual(t, len(chunk), 5)
		}
		for _, r := range j.steps[i] {
			b, err := json.Marshal(r)
			require.NoError(t, err)
			assert.NotContains(t, string(b), testSecret)
		}
	}
	b, err := json.Marshal(c)
	require.NoError(t, err)
	assert.NotContains(t, string(b), testSecret)
}

// recordingOutbox is an outbox whose sender records what it sends.
func recordingOutbox(t *testing.T, secrets []string, bgSteps ...int) (*outbox, func() []record) {
	t.Helper()
	var mu sync.Mutex
	var got []record
	sp, err := openSpool(filepath.Join(t.TempDir(), "spool"), 0)
	require.NoError(t, err)
	red := redaction{m: redact.New(secrets), background: map[int]bool{}}
	for _, i := range bgSteps {
		red.background[i] = true
	}
	ob := newOutbox(sp, func(_ context.Context, r record) error {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		return nil
	}, func(error) {}, func() bool { return false }, slog.New(slog.DiscardHandler),
		backoff{min: time.Millisecond, max: time.Millisecond}, 4, time.Microsecond, red)
	go ob.run(t.Context())
	return ob, func() []record {
		mu.Lock()
		defer mu.Unlock()
		return append([]record(nil), got...)
	}
}

func logOf(recs []record, step int) string {
	var b bytes.Buffer
	for _, r := range recs {
		if r.kind == recLog && r.step == step {
			b.Write(r.data)
		}
	}
	return b.String()
}

// TestStepWriterRedactsSplitSecret writes a secret one byte per Write with
// chunks of 4 bytes and a flush delay of a microsecond, so chunks are cut and
// timers fire in the middle of the secret: no record carries it, and the
// spool never holds it.
func TestStepWriterRedactsSplitSecret(t *testing.T) {
	t.Parallel()
	ob, records := recordingOutbox(t, []string{testSecret})
	w := ob.writer(0)
	input := "a " + testSecret + " b " + base64.StdEncoding.EncodeToString([]byte(testSecret)) + " c " + testSecret[:5]
	for i := range len(input) {
		_, err := w.Write([]byte{input[i]})
		require.NoError(t, err)
		if i%7 == 0 {
			spoolHasNo(t, ob, testSecret)
		}
	}
	w.flush() // the step ends: the held "s3cr3" is released
	ob.appendStep(0, api.StepResult{Status: ci.StepFailed, Message: "token " + testSecret + " rejected", Reason: testSecret})
	ob.appendComplete(api.CompleteJob{Attempt: 1, Result: ci.JobFailed, Message: "failed: " + testSecret})
	spoolHasNo(t, ob, testSecret)
	require.NoError(t, ob.finish(t.Context()))

	recs := records()
	assert.Equal(t, "a *** b *** c "+testSecret[:5], logOf(recs, 0))
	for _, r := range recs {
		assert.NotContains(t, string(r.data), testSecret, "record %s", r.kind)
	}
	var step api.StepResult
	require.NoError(t, json.Unmarshal(recs[len(recs)-2].data, &step))
	assert.Equal(t, "token *** rejected", step.Message)
	assert.Equal(t, "***", step.Reason)
	var done api.CompleteJob
	require.NoError(t, json.Unmarshal(recs[len(recs)-1].data, &done))
	assert.Equal(t, "failed: ***", done.Message)
}

// TestBackgroundStepHoldsUntilJobEnd: a background step's output goes on
// after its step ended, so the step's end does not release a possible
// partial secret; the job's end does.
func TestBackgroundStepHoldsUntilJobEnd(t *testing.T) {
	t.Parallel()
	ob, records := recordingOutbox(t, []string{testSecret}, 1)
	bg := ob.writer(1)
	_, err := bg.Write([]byte("x " + testSecret[:6]))
	require.NoError(t, err)
	bg.flush() // the background step "ended"; its process goes on
	_, err = bg.Write([]byte(testSecret[6:] + " y " + testSecret[:3]))
	require.NoError(t, err)
	require.NoError(t, ob.finish(t.Context())) // the job ends: everything is released
	assert.Equal(t, "x ***"+" y "+testSecret[:3], logOf(records(), 1))
}

// spoolHasNo requires that no spool file holds s.
func spoolHasNo(t *testing.T, ob *outbox, s string) {
	t.Helper()
	ob.mu.Lock()
	defer ob.mu.Unlock()
	entries, err := os.ReadDir(ob.sp.dir)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(ob.sp.dir, e.Name()))
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		require.False(t, strings.Contains(string(b), s), "spool file %s holds the secret", e.Name())
	}
}

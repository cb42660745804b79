package tools

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/executor"
)

// RndTest is Kraken's `rndtest` tool, for trying kkd's results handling: it
// reports random test results with random values. Parameters:
//
//	count            number of tests (default 10; a number or numeric string)
//	override_result  give every test this status: a Kraken status code
//	                 (0 not-run, 1 passed, 2 failed, 3 error, 4 disabled,
//	                 5 unstable) or its name
//
// The randomness is seeded from the job, attempt and step, so a job's
// results can be reproduced. The step is ok whatever the statuses.
type RndTest struct{}

var krakenStatuses = []string{api.TestNotRun, api.TestPassed, api.TestFailed, api.TestError, api.TestDisabled, api.TestUnstable}

// Run reports the random results.
func (RndTest) Run(ctx context.Context, env executor.Env, st Step) Result {
	const tool = "rndtest"
	count, err := Int(st.Fields, "count", 10)
	if err == nil && (count < 1 || count > 100000) {
		err = fmt.Errorf("count: want 1 to 100000 tests, got %d", count)
	}
	if err != nil {
		return badParams(tool, err)
	}
	override := ""
	if v, ok := st.Fields["override_result"]; ok && v != nil {
		s := strings.TrimSpace(Stringify(v))
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < len(krakenStatuses) {
			override = krakenStatuses[n]
		} else {
			for _, k := range krakenStatuses {
				if k == s {
					override = k
				}
			}
		}
		if override == "" && s != "" {
			return badParams(tool, fmt.Errorf("override_result: want 0-5 or a status name (%s), got %q", strings.Join(krakenStatuses, ", "), s))
		}
	}
	if err := st.needServices(tool); err != nil {
		return stepError(ctx, tool, err)
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d/%d", st.Job.ID, st.Job.Attempt, st.Index)
	rng := rand.New(rand.NewPCG(h.Sum64(), uint64(count)))
	weights := []string{api.TestPassed, api.TestPassed, api.TestPassed, api.TestPassed, api.TestPassed,
		api.TestPassed, api.TestFailed, api.TestError, api.TestDisabled, api.TestNotRun}
	rep := startReporter(ctx, st.Services)
	for i := range count {
		status := weights[rng.IntN(len(weights))]
		if override != "" {
			status = override
		}
		t := api.TestResult{Name: fmt.Sprintf("tc_%04d", i+1), Status: status, Cmd: "rndtest",
			Duration: math.Round(rng.Float64()*1000) / 100, Values: map[string]api.TestValue{}}
		if status == api.TestFailed || status == api.TestError {
			t.Message = fmt.Sprintf("random %s", status)
		}
		for _, name := range []string{"throughput", "latency"} {
			iters := 1 + rng.IntN(20)
			base := 10 + rng.Float64()*90
			lo, hi := base*0.9, base*1.1
			med, sd := base, base*0.05*rng.Float64()
			t.Values[name] = api.TestValue{Value: base, Iterations: iters, Median: &med, Min: &lo, Max: &hi, Stddev: &sd}
		}
		rep.test(t)
	}
	if err := rep.close(); err != nil {
		return stepError(ctx, tool, fmt.Errorf("results not delivered: %w", err))
	}
	summary := rep.summary()
	fmt.Fprintf(st.Output, "%s: %s\n", tool, summary)
	return Result{Status: ci.StepOK, Message: summary}
}

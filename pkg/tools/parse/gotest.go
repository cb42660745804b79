package parse

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
)

// GoTest follows the event stream of `go test -json` (test2json), one line at
// a time. A test is named <package>::<test> (subtests keep their slashes). A
// test's "run" event registers it as not-run; pass, fail and skip finish it
// (passed, failed, disabled; the failure's message is the test's output). A
// package that fails without a failed test (a build error, a panic in
// TestMain, a timeout) gives a result named after the package, with status
// error. The zero value is not ready: use NewGoTest.
type GoTest struct {
	outputs map[string]*strings.Builder // output of running tests, by name
	failed  map[string]bool             // packages with a failed test
	// Failed counts failed tests and packages.
	Failed int
	// Passed counts passed tests.
	Passed int
}

// NewGoTest returns a parser of one `go test -json` stream.
func NewGoTest() *GoTest {
	return &GoTest{outputs: map[string]*strings.Builder{}, failed: map[string]bool{}}
}

// goEvent is a test2json event (cmd/test2json), with the build events of Go
// 1.24 (build-output, build-fail with ImportPath).
type goEvent struct {
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string
}

// Line handles one line of output. It returns the text to show in the log
// (the test output, or the line itself when it is not an event) and the
// results the line registered or finished.
func (g *GoTest) Line(line []byte) (show string, results []api.TestResult) {
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return string(line), nil
	}
	var ev goEvent
	if err := json.Unmarshal(trimmed, &ev); err != nil || ev.Action == "" {
		return string(line), nil
	}
	if math.IsNaN(ev.Elapsed) || ev.Elapsed < 0 {
		ev.Elapsed = 0
	}
	name := ev.Package
	if ev.Test != "" {
		name = ev.Package + "::" + ev.Test
	}
	switch ev.Action {
	case "output", "build-output":
		if ev.Test != "" {
			if b := g.outputs[name]; b != nil && b.Len() < MaxMessage {
				b.WriteString(ev.Output[:min(len(ev.Output), MaxMessage-b.Len())])
			}
		}
		return ev.Output, nil
	case "run":
		if ev.Test == "" {
			return "", nil
		}
		g.outputs[name] = &strings.Builder{}
		return "", []api.TestResult{{Name: name, Status: api.TestNotRun}}
	case "pass", "fail", "skip":
		if ev.Test == "" {
			if ev.Action == "fail" && !g.failed[ev.Package] && ev.Package != "" {
				g.Failed++
				return "", []api.TestResult{{Name: ev.Package, Status: api.TestError, Duration: ev.Elapsed,
					Message: "package " + ev.Package + " failed without a failed test (build error, panic or timeout; see the log)"}}
			}
			return "", nil
		}
		res := api.TestResult{Name: name, Duration: ev.Elapsed}
		switch ev.Action {
		case "pass":
			res.Status = api.TestPassed
			g.Passed++
		case "fail":
			res.Status = api.TestFailed
			g.failed[ev.Package] = true
			g.Failed++
			if b := g.outputs[name]; b != nil {
				res.Message = clip(strings.TrimSpace(b.String()))
			}
		case "skip":
			res.Status = api.TestDisabled
			if b := g.outputs[name]; b != nil {
				res.Message = clip(strings.TrimSpace(b.String()))
			}
		}
		delete(g.outputs, name)
		return "", []api.TestResult{res}
	case "build-fail":
		pkg := ev.ImportPath
		if pkg == "" {
			pkg = ev.Package
		}
		if pkg != "" {
			g.failed[pkg] = true
			g.Failed++
			return "", []api.TestResult{{Name: pkg, Status: api.TestError, Message: "build failed (see the log)"}}
		}
	}
	return "", nil
}

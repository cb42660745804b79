package parse

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/api"
)

func junit(t *testing.T, doc string) ([]api.TestResult, error) {
	t.Helper()
	var out []api.TestResult
	err := JUnit(strings.NewReader(doc), func(r api.TestResult) error { out = append(out, r); return nil })
	return out, err
}

func TestJUnit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		doc  string
		want []api.TestResult
		err  string
	}{
		{"statuses", `<?xml version="1.0" encoding="ISO-8859-1"?>
<testsuites><testsuite name="s">
  <testcase classname="m.C" name="ok" time="1.5"/>
  <testcase classname="m.C" name="bad" time="0.1"><failure message="assert 1 == 2">trace</failure></testcase>
  <testcase classname="m.C" name="err"><error>boom
  </error></testcase>
  <testcase name="skip"><skipped/></testcase>
  <testcase classname="m" name="both"><skipped/><error message="e"/></testcase>
</testsuite></testsuites>`, []api.TestResult{
			{Name: "m.C::ok", Status: api.TestPassed, Duration: 1.5},
			{Name: "m.C::bad", Status: api.TestFailed, Message: "assert 1 == 2", Duration: 0.1},
			{Name: "m.C::err", Status: api.TestError, Message: "boom"},
			{Name: "skip", Status: api.TestDisabled},
			{Name: "m::both", Status: api.TestError, Message: "e"},
		}, ""},
		{"nested suites", `<testsuites><testsuite><testsuite><testcase classname="a" name="b" time="1,000.5"/></testsuite></testsuite></testsuites>`,
			[]api.TestResult{{Name: "a::b", Status: api.TestPassed, Duration: 1000.5}}, ""},
		{"bare suite", `<testsuite><testcase name="x" time="junk"/></testsuite>`, []api.TestResult{{Name: "x", Status: api.TestPassed}}, ""},
		{"not junit", `<html><body/></html>`, nil, "not a JUnit XML report"},
		{"empty", ``, nil, "not a JUnit XML report"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := junit(t, tc.doc)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestGoTest(t *testing.T) {
	t.Parallel()
	stream := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:9: want 1\n"}
{"Action":"fail","Package":"p","Test":"TestA","Elapsed":0.25}
{"Action":"run","Package":"p","Test":"TestB/sub"}
{"Action":"pass","Package":"p","Test":"TestB/sub","Elapsed":0.01}
{"Action":"run","Package":"p","Test":"TestC"}
{"Action":"skip","Package":"p","Test":"TestC"}
{"Action":"fail","Package":"p","Elapsed":0.3}
# q [q.test]
{"ImportPath":"q [q.test]","Action":"build-output","Output":"q/x.go:1: syntax error\n"}
{"ImportPath":"q [q.test]","Action":"build-fail"}
{"Action":"fail","Package":"r","Elapsed":0}
`
	p := NewGoTest()
	var shown strings.Builder
	var got []api.TestResult
	for _, line := range strings.SplitAfter(stream, "\n") {
		show, rs := p.Line([]byte(line))
		shown.WriteString(show)
		got = append(got, rs...)
	}
	assert.Equal(t, []api.TestResult{
		{Name: "p::TestA", Status: api.TestNotRun},
		{Name: "p::TestA", Status: api.TestFailed, Duration: 0.25, Message: "=== RUN   TestA\n    a_test.go:9: want 1"},
		{Name: "p::TestB/sub", Status: api.TestNotRun},
		{Name: "p::TestB/sub", Status: api.TestPassed, Duration: 0.01},
		{Name: "p::TestC", Status: api.TestNotRun},
		{Name: "p::TestC", Status: api.TestDisabled},
		{Name: "q [q.test]", Status: api.TestError, Message: "build failed (see the log)"},
		{Name: "r", Status: api.TestError, Message: "package r failed without a failed test (build error, panic or timeout; see the log)"},
	}, got)
	assert.Equal(t, "=== RUN   TestA\n    a_test.go:9: want 1\n# q [q.test]\nq/x.go:1: syntax error\n", shown.String())
	assert.Equal(t, 1, p.Passed)
	assert.Equal(t, 3, p.Failed)
}

func TestPylint(t *testing.T) {
	t.Parallel()
	doc := `No config file found, using default configuration
[{"type": "convention", "module": "m", "obj": "", "line": 3, "column": 0, "path": "m.py",
  "symbol": "missing-docstring", "message": "Missing module docstring", "message-id": "C0111"},
 {"type": "error", "module": "n", "line": 1.0, "column": -1, "path": "", "message-id": "E0401", "message": "x"}]`
	var got []api.Issue
	require.NoError(t, Pylint(strings.NewReader(doc), func(i api.Issue) error { got = append(got, i); return nil }))
	assert.Equal(t, []api.Issue{
		{Path: "m.py", Line: 3, Type: "convention", Symbol: "missing-docstring", Message: "Missing module docstring"},
		{Path: "n", Line: 1, Type: "error", Symbol: "E0401", Message: "x"},
	}, got)
	assert.Error(t, Pylint(strings.NewReader("no json"), func(api.Issue) error { return nil }))
	assert.Error(t, Pylint(strings.NewReader(`[{"line": "x"}`), func(api.Issue) error { return nil }))
}

func TestCloc(t *testing.T) {
	t.Parallel()
	doc := `{"header": {"cloc_version": "1.96", "n_files": 3},
"Go": {"nFiles": 2, "blank": 10, "comment": 5, "code": 100},
"Python": {"nFiles": 1, "blank": 1, "comment": 0, "code": 7},
"SUM": {"blank": 11, "comment": 5, "code": 107, "nFiles": 3}}`
	got, err := Cloc(strings.NewReader(doc))
	require.NoError(t, err)
	assert.Equal(t, []ClocLanguage{{"Go", 2, 10, 5, 100}, {"Python", 1, 1, 0, 7}}, got)
	_, err = Cloc(strings.NewReader(""))
	assert.Error(t, err)
}

func TestNgLint(t *testing.T) {
	t.Parallel()
	eslint := `Linting "app"...
[{"filePath":"/w/src/a.ts","messages":[{"ruleId":"no-var","severity":2,"message":"Unexpected var","line":3,"column":1},
{"ruleId":null,"severity":1,"message":"Parse warning","line":1,"column":2}]},{"filePath":"/w/src/b.ts","messages":[]}]`
	tslint := `[{"name":"src/c.ts","failure":"missing semicolon","ruleName":"semicolon","ruleSeverity":"ERROR","startPosition":{"line":4,"character":9}}]`
	var got []api.Issue
	emit := func(i api.Issue) error { got = append(got, i); return nil }
	require.NoError(t, NgLint(strings.NewReader(eslint), emit))
	require.NoError(t, NgLint(bytes.NewReader([]byte(tslint)), emit))
	assert.Equal(t, []api.Issue{
		{Path: "/w/src/a.ts", Line: 3, Column: 1, Type: "error", Symbol: "no-var", Message: "Unexpected var"},
		{Path: "/w/src/a.ts", Line: 1, Column: 2, Type: "warning", Message: "Parse warning"},
		{Path: "src/c.ts", Line: 5, Column: 10, Type: "error", Symbol: "semicolon", Message: "missing semicolon"},
	}, got)
}

func TestClip(t *testing.T) {
	t.Parallel()
	s := strings.Repeat("é", MaxMessage)
	c := clip(s)
	assert.Less(t, len(c), MaxMessage+50)
	assert.True(t, strings.HasSuffix(c, "[... truncated]"))
}

func FuzzJUnit(f *testing.F) {
	f.Add(`<testsuites><testsuite><testcase classname="a" name="b"><failure message="m"/></testcase></testsuite></testsuites>`)
	f.Add(`<testcase name="x"><error>t</error><skipped/></testcase>`)
	f.Add(`<testsuite><testcase time="NaN"/>`)
	f.Fuzz(func(t *testing.T, doc string) {
		_ = JUnit(strings.NewReader(doc), func(r api.TestResult) error {
			if r.Name == "" || r.Duration < 0 || len(r.Message) > MaxMessage+32 {
				t.Fatalf("bad result %+v", r)
			}
			return nil
		})
	})
}

func FuzzGoTest(f *testing.F) {
	f.Add("{\"Action\":\"run\",\"Package\":\"p\",\"Test\":\"T\"}\n{\"Action\":\"fail\",\"Package\":\"p\",\"Test\":\"T\",\"Elapsed\":-1}\n")
	f.Add("{\"Action\":\"output\",\"Test\":\"T\",\"Output\":\"x\"}\nplain\n{\"Action\":\"build-fail\"}")
	f.Fuzz(func(t *testing.T, stream string) {
		p := NewGoTest()
		for _, line := range strings.SplitAfter(stream, "\n") {
			_, rs := p.Line([]byte(line))
			for _, r := range rs {
				if r.Status == "" || r.Duration < 0 {
					t.Fatalf("bad result %+v", r)
				}
			}
		}
	})
}

func FuzzPylint(f *testing.F) {
	f.Add(`[{"type":"error","line":1,"column":2,"path":"a.py","symbol":"s","message":"m"}]`)
	f.Add(`junk [ {"line": 1e99} ]`)
	f.Fuzz(func(t *testing.T, doc string) {
		_ = Pylint(strings.NewReader(doc), func(i api.Issue) error {
			if i.Line < 0 || i.Column < 0 {
				t.Fatalf("bad issue %+v", i)
			}
			return nil
		})
	})
}

func FuzzCloc(f *testing.F) {
	f.Add(`{"header":{},"Go":{"nFiles":1,"blank":2,"comment":3,"code":4},"SUM":{}}`)
	f.Add(`x{"Go":{"code":-5}}`)
	f.Fuzz(func(t *testing.T, doc string) {
		langs, err := Cloc(strings.NewReader(doc))
		if err != nil {
			return
		}
		for _, l := range langs {
			if l.Code < 0 || l.Blank < 0 || l.Files < 0 || l.Comment < 0 {
				t.Fatalf("negative count %+v", l)
			}
		}
	})
}

func FuzzNgLint(f *testing.F) {
	f.Add(`[{"filePath":"a","messages":[{"severity":2,"line":1}]}]`)
	f.Add(`[{"name":"a","startPosition":{"line":-3}}]`)
	f.Fuzz(func(t *testing.T, doc string) {
		_ = NgLint(strings.NewReader(doc), func(api.Issue) error { return nil })
	})
}

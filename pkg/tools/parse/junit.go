package parse

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
)

// JUnit reads a JUnit XML report (testsuites / testsuite / testcase, at any
// depth) and calls emit for each test case, in document order, as it is read:
// the whole document is never held in memory. A test is named
// classname::name (name alone without a classname). A <failure> makes it
// failed, an <error> error, a <skipped> disabled; the element's message
// attribute (else its text) is the result's message and time its duration
// in seconds. An error of emit stops the parse and is returned.
func JUnit(r io.Reader, emit func(api.TestResult) error) error {
	d := xml.NewDecoder(r)
	d.Strict = false
	d.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) { return in, nil }
	var cur *api.TestResult
	var msgTarget string // element whose text becomes the message
	var text strings.Builder
	seen := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if !seen {
				return errors.New("no <testsuite> or <testcase> element: not a JUnit XML report")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("junit xml: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "testsuites", "testsuite":
				seen = true
			case "testcase":
				seen = true
				cur = &api.TestResult{Status: api.TestPassed}
				var class, name string
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "classname":
						class = a.Value
					case "name":
						name = a.Value
					case "time":
						cur.Duration = parseSeconds(a.Value)
					}
				}
				cur.Name = name
				if class != "" {
					cur.Name = class + "::" + name
				}
			case "failure", "error", "skipped":
				if cur == nil {
					continue
				}
				status := map[string]string{"failure": api.TestFailed, "error": api.TestError, "skipped": api.TestDisabled}[t.Name.Local]
				// The worst outcome wins: error > failure > skipped.
				if rank(status) < rank(cur.Status) {
					continue
				}
				cur.Status = status
				cur.Message = ""
				for _, a := range t.Attr {
					if a.Name.Local == "message" {
						cur.Message = clip(a.Value)
					}
				}
				if cur.Message == "" {
					msgTarget = t.Name.Local
					text.Reset()
				}
			}
		case xml.CharData:
			if msgTarget != "" && text.Len() < MaxMessage {
				text.Write(t[:min(len(t), MaxMessage-text.Len())])
			}
		case xml.EndElement:
			switch {
			case t.Name.Local == msgTarget && cur != nil:
				cur.Message = clip(strings.TrimSpace(text.String()))
				msgTarget = ""
			case t.Name.Local == "testcase" && cur != nil:
				if cur.Name == "" {
					cur.Name = "(unnamed)"
				}
				if err := emit(*cur); err != nil {
					return err
				}
				cur, msgTarget = nil, ""
			}
		}
	}
}

func rank(status string) int {
	switch status {
	case api.TestError:
		return 3
	case api.TestFailed:
		return 2
	case api.TestDisabled:
		return 1
	}
	return 0
}

// parseSeconds reads a duration like "1.25" or "1,250.5"; junk gives 0.
func parseSeconds(s string) float64 {
	f, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0
	}
	return f
}

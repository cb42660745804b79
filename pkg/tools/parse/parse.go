// Package parse reads the reports of test runners and linters the tools run
// (JUnit XML, `go test -json`, pylint's and cloc's JSON, ng lint's JSON) into
// the API's test results and issues. The input is untrusted: parsers never
// panic, stream what they can (a report may be huge) and return an error
// saying what is wrong with the input.
package parse

import "unicode/utf8"

// MaxMessage bounds the message kept for one result or issue (bytes).
const MaxMessage = 16 << 10

// clip bounds s to MaxMessage bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= MaxMessage {
		return s
	}
	cut := MaxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "\n[... truncated]"
}

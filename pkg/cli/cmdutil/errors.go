// Package cmdutil holds what kk's commands share: the exit code table, usage
// errors, argument validators and the parsing of references (PROJECT/BRANCH,
// ids, k=v arguments).
package cmdutil

import (
	"context"
	"errors"
	"fmt"
)

// ExitCode is the process exit status of kk. This is the one table of them.
type ExitCode int

const (
	// ExitOK: success.
	ExitOK ExitCode = 0
	// ExitError: the command failed (server error, failed flow, invalid schema...).
	ExitError ExitCode = 1
	// ExitUsage: the command line is wrong (unknown flag or command, wrong
	// number of arguments, malformed value).
	ExitUsage ExitCode = 2
	// ExitInterrupted: the user pressed Ctrl-C (128 + SIGINT, as shells report it).
	ExitInterrupted ExitCode = 130
)

// UsageError is an error in the command line. The command's usage is printed
// with it and kk exits with ExitUsage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// UsageErrorf formats a UsageError.
func UsageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ErrSilent makes kk exit with ExitError without printing anything more: the
// command already explained the failure on stderr.
var ErrSilent = errors.New("silent failure")

// ExitCodeOf maps the error a command returned to the exit code.
func ExitCodeOf(err error) ExitCode {
	var ue *UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	}
	return ExitError
}

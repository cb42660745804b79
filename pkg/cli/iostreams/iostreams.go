// Package iostreams holds the standard streams of a command and what is known
// about them (terminal or not, colours), so that every command can be tested
// with buffers.
package iostreams

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams are the streams a command reads and writes. Data goes to Out,
// messages, prompts and progress to ErrOut.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdinTTY  bool
	stdoutTTY bool
	stderrTTY bool
	noColor   bool

	// readPassword reads a line from the terminal without echo.
	readPassword func() ([]byte, error)
}

// System returns the process's streams. getenv is used for NO_COLOR and TERM.
func System(getenv func(string) string) *IOStreams {
	stdinFD := int(os.Stdin.Fd())
	return &IOStreams{
		In:        os.Stdin,
		Out:       os.Stdout,
		ErrOut:    os.Stderr,
		stdinTTY:  term.IsTerminal(stdinFD),
		stdoutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		stderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
		noColor:   getenv("NO_COLOR") != "" || getenv("TERM") == "dumb",
		readPassword: func() ([]byte, error) {
			return term.ReadPassword(stdinFD)
		},
	}
}

// Test returns streams backed by buffers: stdin, stdout and stderr. None is a
// terminal unless set with the Set*TTY methods.
func Test() (*IOStreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// IsStdinTTY reports whether stdin is a terminal.
func (s *IOStreams) IsStdinTTY() bool { return s.stdinTTY }

// IsStdoutTTY reports whether stdout is a terminal.
func (s *IOStreams) IsStdoutTTY() bool { return s.stdoutTTY }

// IsStderrTTY reports whether stderr is a terminal.
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// SetStdinTTY overrides terminal detection (tests).
func (s *IOStreams) SetStdinTTY(v bool) { s.stdinTTY = v }

// SetStdoutTTY overrides terminal detection (tests).
func (s *IOStreams) SetStdoutTTY(v bool) { s.stdoutTTY = v }

// SetStderrTTY overrides terminal detection (tests).
func (s *IOStreams) SetStderrTTY(v bool) { s.stderrTTY = v }

// SetNoColor disables colours.
func (s *IOStreams) SetNoColor(v bool) { s.noColor = v }

// SetPasswordReader replaces how a password is read from the terminal (tests).
func (s *IOStreams) SetPasswordReader(f func() ([]byte, error)) { s.readPassword = f }

// ColorEnabled reports whether stdout may carry ANSI colours: it is a
// terminal and NO_COLOR is not set.
func (s *IOStreams) ColorEnabled() bool { return s.stdoutTTY && !s.noColor }

// CanPrompt reports whether the user can be asked questions.
func (s *IOStreams) CanPrompt() bool { return s.stdinTTY && s.stderrTTY }

// ReadPassword prints prompt to ErrOut and reads a line without echo.
func (s *IOStreams) ReadPassword(prompt string) (string, error) {
	if s.readPassword == nil {
		return "", errors.New("cannot read a password: stdin is not a terminal")
	}
	fmt.Fprint(s.ErrOut, prompt)
	b, err := s.readPassword()
	fmt.Fprintln(s.ErrOut)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}

// Color wraps text in an ANSI colour when colours are enabled. Known names:
// red, green, yellow, blue, magenta, cyan, gray, bold.
func (s *IOStreams) Color(name, text string) string {
	if !s.ColorEnabled() || text == "" {
		return text
	}
	code := ansiCode(name)
	if code == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func ansiCode(name string) string {
	switch name {
	case "red":
		return "31"
	case "green":
		return "32"
	case "yellow":
		return "33"
	case "blue":
		return "34"
	case "magenta":
		return "35"
	case "cyan":
		return "36"
	case "gray":
		return "90"
	case "bold":
		return "1"
	}
	return ""
}

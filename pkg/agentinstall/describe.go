package agentinstall

import (
	"bufio"
	"fmt"
	"io"
)

// Describe writes the plan in the order Apply carries it out: every
// command as a shell line, every directory, the download, every file with
// its path, mode, owner and full content, every removal. Secrets (the
// registration key) are masked unless showSecrets.
func (p *Plan) Describe(w io.Writer, showSecrets bool) error {
	bw := bufio.NewWriter(w)
	commands := func(cmds []Command) {
		for _, c := range cmds {
			when := ""
			if c.OnChange {
				when = " (only when a file or the binary changed)"
			}
			fmt.Fprintf(bw, "== run%s:\n%s\n\n", when, c)
		}
	}
	commands(p.Before)
	for _, d := range p.Dirs {
		fmt.Fprintf(bw, "== directory %s (mode %04o, owner %s)\n\n", d.Path, d.Mode, d.Owner)
	}
	if d := p.Binary; d != nil {
		fmt.Fprintf(bw, "== download %s (mode %04o, owner %s)\nfrom   %s\nsha256 %s (must match, or nothing is installed)\n\n",
			d.Path, d.Mode, d.Owner, d.URL, d.SHA256URL)
	}
	for _, f := range p.Files {
		content := f.Content
		if f.Masked != nil && !showSecrets {
			content = f.Masked
		}
		guard := ""
		if f.Guard && !p.Force {
			guard = "; refused if the file exists and was not written by kk agent install"
		}
		fmt.Fprintf(bw, "== file %s (mode %04o, owner %s%s)\n", f.Path, f.Mode, f.Owner, guard)
		bw.Write(content)
		if len(content) > 0 && content[len(content)-1] != '\n' {
			bw.WriteByte('\n')
		}
		bw.WriteByte('\n')
	}
	for _, r := range p.Remove {
		how := ""
		switch {
		case r.Recursive:
			how = " (with everything in it)"
		case r.Dir:
			how = " (when empty)"
		}
		fmt.Fprintf(bw, "== remove %s%s\n\n", r.Path, how)
	}
	commands(p.After)
	return bw.Flush()
}

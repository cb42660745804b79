package agentinstall

import (
	"io"
	"os"
	"slices"
	"strings"
)

// Plan is what an install or uninstall does, in order: the Before commands,
// the directories, the binary, the files, the removals, then the After
// commands. Apply carries it out; Describe prints it.
type Plan struct {
	// Before run first (install: create the user; uninstall: stop the service).
	Before []Command
	// Dirs are created (with their parents) and given their mode.
	Dirs []Dir
	// Binary, when set, is downloaded and verified before anything else
	// happens, then installed.
	Binary *Download
	// Files are written atomically.
	Files []File
	// Remove lists paths to delete.
	Remove []Removal
	// After run last (install: chown, reload and start the service).
	After []Command

	// Force lets Apply overwrite a Guarded file that lacks Marker.
	Force bool
	// Progress, when set, receives a line per step Apply takes.
	Progress io.Writer
}

// Dir is a directory the installer owns.
type Dir struct {
	Path  string
	Mode  os.FileMode
	Owner string // user name; set by a chown in After
}

// File is a file the installer writes.
type File struct {
	Path    string
	Mode    os.FileMode
	Owner   string
	Content []byte
	// Masked is Content with secrets replaced, for Describe; nil when
	// Content holds no secret.
	Masked []byte
	// Guard: refuse to overwrite an existing file without Marker.
	Guard bool
}

// Download is the kkagent binary, fetched from URL and checked against the
// hex SHA-256 digest served at SHA256URL.
type Download struct {
	Path      string
	Mode      os.FileMode
	Owner     string
	URL       string
	SHA256URL string
}

// Removal is a path to delete.
type Removal struct {
	Path string
	// Recursive: the path and everything below it.
	Recursive bool
	// Dir: a directory, removed only when empty.
	Dir bool
}

// Command is a program run on the host, not in the install root.
type Command struct {
	Args []string
	// Unless is a check: when it exits 0, Args is not run.
	Unless []string
	// If is a check: Args runs only when it exits 0.
	If []string
	// OnChange: run Args only when Apply changed the binary or a file.
	OnChange bool
}

// String renders c as a shell command line.
func (c Command) String() string {
	s := ShellJoin(c.Args)
	switch {
	case c.Unless != nil:
		s = ShellJoin(c.Unless) + " >/dev/null 2>&1 || " + s
	case c.If != nil:
		s = ShellJoin(c.If) + " >/dev/null 2>&1 && " + s
	}
	return s
}

// InstallPlan returns the plan of an install with o. It touches nothing.
func InstallPlan(o Options) (*Plan, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	v := values{
		Server:          o.Server,
		DataDir:         o.DataDir,
		RegistrationKey: o.RegistrationKey,
		User:            o.User,
		RunFlags:        runFlags(o.Groups, o.Name),
	}
	env := File{Path: EnvFilePath, Mode: 0o600, Owner: "root", Content: render(envTemplate, v)}
	if o.RegistrationKey != "" {
		masked := v
		masked.RegistrationKey = "********"
		env.Masked = render(envTemplate, masked)
	}
	p := &Plan{
		Before: userCommands(o.User, o.DataDir, o.UnixGroups),
		Dirs: []Dir{
			{Path: InstallDir, Mode: 0o755, Owner: o.User},
			{Path: ConfigDir, Mode: 0o755, Owner: "root"},
			{Path: o.DataDir, Mode: 0o750, Owner: o.User},
		},
		Binary: &Download{
			Path: BinaryPath, Mode: 0o755, Owner: o.User,
			URL:       BinaryURL(o.Server, o.Arch),
			SHA256URL: SHA256URL(o.Server, o.Arch),
		},
		Files: []File{
			env,
			{Path: UnitPath, Mode: 0o644, Owner: "root", Content: render(unitTemplate, v), Guard: true},
		},
		Force: o.Force,
	}
	p.After = append(p.After, p.chown(o.User),
		Command{Args: []string{"systemctl", "daemon-reload"}},
		// Restart a running agent only when something changed, so that
		// re-running an unchanged install does not interrupt a job.
		Command{Args: []string{"systemctl", "try-restart", UnitName}, OnChange: true},
		Command{Args: []string{"systemctl", "enable", "--now", UnitName}},
	)
	return p, nil
}

// userCommands create the agent's user unless it exists, and add it to
// unixGroups.
func userCommands(user, home string, unixGroups []string) []Command {
	cmds := []Command{{
		Unless: []string{"id", "-u", user},
		Args: []string{"useradd", "--system", "--user-group", "--home-dir", home, "--no-create-home",
			"--shell", "/usr/sbin/nologin", user},
	}}
	if len(unixGroups) > 0 {
		cmds = append(cmds, Command{Args: []string{"usermod", "--append", "--groups", strings.Join(unixGroups, ","), user}})
	}
	return cmds
}

// chown gives user what the plan says it owns ("user:" is the user and its
// login group).
func (p *Plan) chown(user string) Command {
	args := []string{"chown", user + ":"}
	for _, d := range p.Dirs {
		if d.Owner == user {
			args = append(args, d.Path)
		}
	}
	if p.Binary != nil && p.Binary.Owner == user {
		args = append(args, p.Binary.Path)
	}
	for _, f := range p.Files {
		if f.Owner == user {
			args = append(args, f.Path)
		}
	}
	return Command{Args: args}
}

// BinaryURL is where server serves kkagent for linux/arch.
func BinaryURL(server, arch string) string {
	return strings.TrimRight(server, "/") + BinaryURLPath + "?os=linux&arch=" + arch
}

// SHA256URL is where server serves the hex SHA-256 of kkagent for linux/arch.
func SHA256URL(server, arch string) string {
	return strings.TrimRight(server, "/") + BinarySHA256Path + "?os=linux&arch=" + arch
}

// File returns the plan's file at path, or nil.
func (p *Plan) File(path string) *File {
	i := slices.IndexFunc(p.Files, func(f File) bool { return f.Path == path })
	if i < 0 {
		return nil
	}
	return &p.Files[i]
}

// Empty reports whether the plan does nothing.
func (p *Plan) Empty() bool {
	return len(p.Before) == 0 && len(p.Dirs) == 0 && p.Binary == nil && len(p.Files) == 0 &&
		len(p.Remove) == 0 && len(p.After) == 0
}

// ShellJoin quotes args for a POSIX shell.
func ShellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}

// ShellQuote quotes s for a POSIX shell when it needs quoting.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Package agentinstall sets kkagent up on a Linux host as a systemd service,
// and takes it down again. It backs `kk agent install`, `kk agent uninstall`
// and the install script kkd serves at ScriptPath.
//
// An install is described by a Plan before anything is touched, so that
// `--dry-run` prints exactly what a real install does. The layout:
//
//	/opt/kraken/                      the agent's directory, owned by the agent's user so
//	/opt/kraken/kkagent               that kkagent can upgrade itself in place (0755)
//	/etc/kraken/kkagent.env           KRAKEN_SERVER_ADDR, KKAGENT_DATA_DIR and
//	                                  KKAGENT_REGISTRATION_KEY (0600 root: it holds the key)
//	/etc/systemd/system/kkagent.service  runs `/opt/kraken/kkagent run` (the supervisor) as
//	                                  the agent's user, with EnvironmentFile= the env file
//	/var/lib/kkagent                  data dir (identity, credential, workspaces; 0750),
//	                                  kept by uninstall unless purged
//
// The agent runs as a dedicated system user (default kraken), added to the
// docker group when that group exists so docker jobs can use the Docker
// socket. The unit and the env file are rendered from one set of templates,
// both by Plan and by Script, so the two installers cannot drift.
package agentinstall

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strings"
)

// Paths and names of an installed agent.
const (
	InstallDir     = "/opt/kraken"
	BinaryPath     = "/opt/kraken/kkagent"
	ConfigDir      = "/etc/kraken"
	EnvFilePath    = "/etc/kraken/kkagent.env"
	UnitName       = "kkagent.service"
	UnitPath       = "/etc/systemd/system/kkagent.service"
	DefaultDataDir = "/var/lib/kkagent"
	DefaultUser    = "kraken"
	DefaultImage   = "kraken/kkagent"
	// DockerGroup is the unix group that may use the Docker socket.
	DockerGroup = "docker"
	// Marker is in every file the installer writes; it will not overwrite
	// a unit without it unless forced.
	Marker = "Written by kk agent install"
)

// URL paths kkd serves for installs, relative to the server URL.
const (
	ScriptPath       = "/install/kraken-agent-install.sh"
	BinaryURLPath    = "/install/kkagent"
	BinarySHA256Path = "/install/kkagent/sha256"
)

// Options describe an agent install. Only Server is required.
type Options struct {
	// Server is the kkd URL the agent connects to and downloads kkagent from.
	Server string
	// DataDir is the agent's data dir (default DefaultDataDir).
	DataDir string
	// User is the system user the agent runs as (default DefaultUser).
	User string
	// UnixGroups are supplementary unix groups of User (e.g. docker).
	UnixGroups []string
	// Groups are the kkd groups the agent joins when it enrols with
	// RegistrationKey (kkagent run --group).
	Groups []string
	// Name is the agent's name (kkagent run --name; default: the host name).
	Name string
	// RegistrationKey enrols the agent without `kk agent authorize`.
	RegistrationKey string
	// Arch is the architecture of the binary to install: amd64 or arm64
	// (default: this program's).
	Arch string
	// Image is the container image of DockerRunLine (default DefaultImage).
	Image string
	// Force lets the install overwrite a unit it did not write.
	Force bool
}

// Archs are the architectures kkd serves kkagent for.
var Archs = []string{"amd64", "arm64"}

var (
	// groupName and agentName follow kkd's rules for names.
	groupName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
	agentName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	unixName  = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// envValue is what may go unquoted into the env file, the unit and the
	// script's here-documents: URL characters without quotes, spaces, '$',
	// '\', '#', '?' and '&'.
	envValue = regexp.MustCompile(`^[A-Za-z0-9._~:/\[\]@+,=%-]*$`)
	dirPath  = regexp.MustCompile(`^/[A-Za-z0-9._/-]+$`)
)

// Directories a data dir may not be, or (deniedTrees) be inside of: the
// installer chowns the data dir and `uninstall --purge-data` deletes it.
var (
	deniedDirs = []string{
		"/usr/local", "/usr/share", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/include", "/usr/src",
		"/var/lib", "/var/cache", "/var/log", "/var/tmp", "/var/spool", "/var/mail", "/var/opt",
	}
	deniedTrees = []string{
		InstallDir, ConfigDir, "/etc", "/boot", "/dev", "/proc", "/run", "/sys",
		"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/usr/bin", "/usr/sbin",
	}
)

// withDefaults fills the defaults in and normalises the server URL.
func (o Options) withDefaults() Options {
	o.Server = strings.TrimRight(strings.TrimSpace(o.Server), "/")
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	if o.User == "" {
		o.User = DefaultUser
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.Image == "" {
		o.Image = DefaultImage
	}
	return o
}

// Validate checks the options; the errors say how to fix them.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if err := validateServer(o.Server); err != nil {
		errs = append(errs, err)
	}
	if err := ValidateDataDir(o.DataDir); err != nil {
		errs = append(errs, err)
	}
	if !unixName.MatchString(o.User) {
		errs = append(errs, fmt.Errorf("user %q: use a unix user name (lower case letters, digits, '_' and '-', up to 32)", o.User))
	}
	for _, g := range o.UnixGroups {
		if !unixName.MatchString(g) {
			errs = append(errs, fmt.Errorf("unix group %q: use a unix group name (lower case letters, digits, '_' and '-')", g))
		}
	}
	for _, g := range o.Groups {
		if !groupName.MatchString(g) {
			errs = append(errs, fmt.Errorf("group %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", g))
		}
	}
	if o.Name != "" && !agentName.MatchString(o.Name) {
		errs = append(errs, fmt.Errorf("agent name %q: use up to 64 letters, digits, '.', '_' and '-', starting with a letter or digit", o.Name))
	}
	if len(o.RegistrationKey) > 512 || !envValue.MatchString(o.RegistrationKey) {
		errs = append(errs, errors.New("registration key: use up to 512 letters, digits and the characters ._~:/[]@+,=%- (no spaces or quotes)"))
	}
	if !slices.Contains(Archs, o.Arch) {
		errs = append(errs, fmt.Errorf("architecture %q: kkd serves kkagent for %s", o.Arch, strings.Join(Archs, " and ")))
	}
	return errors.Join(errs...)
}

func validateServer(s string) error {
	if s == "" {
		return errors.New("no server: pass --server URL, the kkd URL agents connect to (e.g. http://kkd.example.com:6363)")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || !envValue.MatchString(s) {
		return fmt.Errorf("server %q: want an http:// or https:// URL with a host and no user, query or spaces, e.g. http://kkd.example.com:6363", s)
	}
	return nil
}

// ValidateDataDir checks that dir can be an agent's data dir: an absolute,
// clean path of at least two elements that is no system directory.
func ValidateDataDir(dir string) error {
	bad := func(why string) error {
		return fmt.Errorf("data dir %q: %s; use a directory of its own such as %s", dir, why, DefaultDataDir)
	}
	switch {
	case !dirPath.MatchString(dir):
		return bad("want an absolute path of letters, digits, '.', '_', '-' and '/'")
	case path.Clean(dir) != dir || strings.Contains(dir+"/", "/./") || strings.Contains(dir+"/", "/../"):
		return bad("not a clean path")
	case strings.Count(dir, "/") < 2 || slices.Contains(deniedDirs, dir):
		return bad("a system directory")
	}
	for _, t := range deniedTrees {
		if dir == t || strings.HasPrefix(dir, t+"/") {
			return bad("inside " + t)
		}
	}
	return nil
}

// runFlags are the flags of `kkagent run` in the unit that have no
// environment variable: groups and name. Values are validated, so they
// need no quoting.
func runFlags(groups []string, name string) string {
	var b strings.Builder
	for _, g := range groups {
		b.WriteString(" --group " + g)
	}
	if name != "" {
		b.WriteString(" --name " + name)
	}
	return b.String()
}

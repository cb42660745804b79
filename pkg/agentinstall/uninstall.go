package agentinstall

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// UninstallOptions describe an uninstall.
type UninstallOptions struct {
	// DataDir is the agent's data dir (default: KKAGENT_DATA_DIR of the
	// installed env file, else DefaultDataDir). Kept unless PurgeData.
	DataDir string
	// User is the agent's user (default: User= of the installed unit, else
	// DefaultUser). Kept unless RemoveUser.
	User string
	// PurgeData deletes the data dir: the agent's identity, credential and
	// workspaces.
	PurgeData bool
	// RemoveUser deletes the agent's user.
	RemoveUser bool
	// Force removes a unit that kk agent install did not write.
	Force bool
}

// Installed is what ReadInstalled found of an install.
type Installed struct {
	// Unit, EnvFile and InstallDir report whether each exists.
	Unit, EnvFile, InstallDir bool
	// UnitOurs: the unit carries Marker (or does not exist).
	UnitOurs bool
	// DataDir and User are read from the env file and the unit; "" when
	// they are not there.
	DataDir, User string
}

// ReadInstalled inspects an install under root.
func ReadInstalled(root string) (*Installed, error) {
	at := func(p string) string { return filepath.Join(root, p) }
	in := &Installed{}
	unit, err := readIfExists(at(UnitPath))
	if err != nil {
		return nil, err
	}
	in.Unit = unit != nil
	in.UnitOurs = unit == nil || bytes.Contains(unit, []byte(Marker))
	in.User = lineValue(unit, "User")
	env, err := readIfExists(at(EnvFilePath))
	if err != nil {
		return nil, err
	}
	in.EnvFile = env != nil
	in.DataDir = lineValue(env, "KKAGENT_DATA_DIR")
	if fi, err := os.Stat(at(InstallDir)); err == nil && fi.IsDir() {
		in.InstallDir = true
	}
	return in, nil
}

func readIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// lineValue returns the value of the last KEY=VALUE line for key.
func lineValue(b []byte, key string) string {
	v := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && strings.TrimSpace(k) == key {
			v = strings.Trim(strings.TrimSpace(val), `"'`)
		}
	}
	return v
}

// UninstallPlan returns the plan that undoes an install under root: stop
// and disable the service, remove the unit, the env file and InstallDir,
// and on request the data dir and the user. It reads root to find what is
// installed and changes nothing; an empty plan means nothing is installed.
func UninstallPlan(root string, o UninstallOptions) (*Plan, error) {
	in, err := ReadInstalled(root)
	if err != nil {
		return nil, err
	}
	if !in.UnitOurs && !o.Force {
		return nil, fmt.Errorf("%s was not written by kk agent install: pass --force to remove it anyway", UnitPath)
	}
	dataDir := firstOf(o.DataDir, in.DataDir, DefaultDataDir)
	user := firstOf(o.User, in.User, DefaultUser)
	if !unixName.MatchString(user) {
		return nil, fmt.Errorf("user %q: not a unix user name; pass --user", user)
	}
	if o.PurgeData {
		if err := ValidateDataDir(dataDir); err != nil {
			return nil, fmt.Errorf("will not purge: %w", err)
		}
	} else if dataDir == InstallDir || strings.HasPrefix(dataDir, InstallDir+"/") {
		return nil, fmt.Errorf("data dir %s is inside %s, which uninstall deletes: "+
			"move it, or pass --purge-data to delete it too", dataDir, InstallDir)
	}

	exists := func(p string) bool {
		_, err := os.Lstat(filepath.Join(root, p))
		return err == nil
	}
	p := &Plan{}
	if in.Unit {
		p.Before = append(p.Before, Command{Args: []string{"systemctl", "disable", "--now", UnitName}})
	}
	for _, r := range []Removal{
		{Path: UnitPath},
		{Path: EnvFilePath},
		{Path: ConfigDir, Dir: true},
		{Path: InstallDir, Recursive: true},
	} {
		if exists(r.Path) {
			p.Remove = append(p.Remove, r)
		}
	}
	if o.PurgeData && exists(dataDir) {
		p.Remove = append(p.Remove, Removal{Path: dataDir, Recursive: true})
	}
	if in.Unit {
		p.After = append(p.After, Command{Args: []string{"systemctl", "daemon-reload"}})
	}
	if o.RemoveUser {
		p.After = append(p.After, Command{If: []string{"id", "-u", user}, Args: []string{"userdel", user}})
	}
	return p, nil
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

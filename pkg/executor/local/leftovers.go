package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Process groups of running commands are recorded in <dataDir>/pgroups, one
// file per group named after its id and holding its leader's start time (from
// /proc). When the agent process dies without cleaning up (SIGKILL, OOM), its
// steps' groups survive it; the next agent process on the data dir kills them
// (KillLeftovers) before it takes work. The start time guards against a
// recycled pid: a group is killed only if its leader is the very process that
// was recorded.

func (e *Executor) groupsDir() string { return filepath.Join(e.dataDir, "pgroups") }

// procStartTime returns field 22 of /proc/PID/stat (start time in clock ticks).
func procStartTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name (field 2) is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := bytes.Fields(b[i+1:])
	const startTimeField = 22 - 3 // fields after ")" start at field 3
	if len(fields) <= startTimeField {
		return "", fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	return string(fields[startTimeField]), nil
}

// recordGroup notes a running command's process group; forgetGroup drops the
// note once the group is gone. Both are best effort: a failure only means a
// crash could leave that group behind, so it is logged, not fatal.
func (e *Executor) recordGroup(pgid int) {
	st, err := procStartTime(pgid)
	if err == nil {
		if err = os.MkdirAll(e.groupsDir(), 0o700); err == nil {
			err = os.WriteFile(filepath.Join(e.groupsDir(), strconv.Itoa(pgid)), []byte(st), 0o600)
		}
	}
	if err != nil {
		e.logger.Warn("cannot record the command's process group; a crash of the agent could leave it running", "pgid", pgid, "err", err)
	}
}

func (e *Executor) forgetGroup(pgid int) {
	if err := os.Remove(filepath.Join(e.groupsDir(), strconv.Itoa(pgid))); err != nil && !errors.Is(err, os.ErrNotExist) {
		e.logger.Warn("remove process group record", "pgid", pgid, "err", err)
	}
}

// KillLeftovers kills the process groups that commands of a previous agent
// process on this data dir left running, and returns how many it killed.
// Call it only while holding the data dir's lock.
func (e *Executor) KillLeftovers() int {
	entries, err := os.ReadDir(e.groupsDir())
	if err != nil {
		return 0
	}
	killed := 0
	for _, ent := range entries {
		path := filepath.Join(e.groupsDir(), ent.Name())
		pgid, err := strconv.Atoi(ent.Name())
		want, rerr := os.ReadFile(path)
		if err == nil && rerr == nil && pgid > 1 {
			if got, err := procStartTime(pgid); err == nil && got == string(bytes.TrimSpace(want)) {
				if err := syscall.Kill(-pgid, syscall.SIGKILL); err == nil {
					killed++
					e.logger.Warn("killed the process group of a step left running by a previous agent process", "pgid", pgid)
				}
			}
		}
		_ = os.Remove(path)
	}
	return killed
}

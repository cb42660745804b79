package agent

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/google/uuid"
)

// Files in the agent's data dir.
const (
	lockFile       = "agent.lock"
	identityFile   = "agent.json"
	credentialFile = "credential"
)

// identity is the agent's stable identity, generated on first start.
type identity struct {
	UUID string `json:"uuid"`
	// EnrollSecret proves to the server that a register call comes from the
	// agent that first registered this UUID (see api.Register).
	EnrollSecret string `json:"enroll_secret"`
}

// dirLock is an exclusive flock on <dataDir>/agent.lock held while the agent
// runs; the kernel drops it when the process dies.
type dirLock struct{ f *os.File }

// lockDataDir takes the data dir's lock or fails at once when another kkagent
// holds it.
func lockDataDir(dataDir string) (*dirLock, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dataDir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := "unknown"
			if data, rerr := os.ReadFile(path); rerr == nil && strings.TrimSpace(string(data)) != "" {
				pid = strings.TrimSpace(string(data))
			}
			return nil, fmt.Errorf("data dir %s is in use by another kkagent (pid %s): stop it or pass another data dir with -d", dataDir, pid)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", dataDir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// release drops the lock.
func (l *dirLock) release() error {
	// Closing the descriptor releases the flock; the file stays, an empty lock
	// file is harmless.
	_ = l.f.Truncate(0)
	return l.f.Close()
}

// loadIdentity reads <dataDir>/agent.json, creating it on first start.
func loadIdentity(dataDir string) (identity, bool, error) {
	path := filepath.Join(dataDir, identityFile)
	data, err := os.ReadFile(path)
	if err == nil {
		var id identity
		if err := json.Unmarshal(data, &id); err != nil {
			return id, false, fmt.Errorf("read %s: %w (delete it to give the agent a new identity)", path, err)
		}
		if _, err := uuid.Parse(id.UUID); err != nil || id.EnrollSecret == "" {
			return id, false, fmt.Errorf("read %s: uuid or enroll_secret missing or invalid (delete the file to give the agent a new identity)", path)
		}
		return id, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return identity{}, false, fmt.Errorf("read identity: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return identity{}, false, fmt.Errorf("generate enroll secret: %w", err)
	}
	id := identity{UUID: uuid.NewString(), EnrollSecret: hex.EncodeToString(secret)}
	data, err = json.MarshalIndent(id, "", "  ")
	if err != nil {
		return id, false, fmt.Errorf("encode identity: %w", err)
	}
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return id, false, fmt.Errorf("write identity: %w", err)
	}
	return id, true, nil
}

// loadCredential returns the stored credential, or "" when there is none.
func loadCredential(dataDir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, credentialFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read credential: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// saveCredential stores the credential (0600).
func saveCredential(dataDir, cred string) error {
	if err := writeFileAtomic(filepath.Join(dataDir, credentialFile), []byte(cred+"\n")); err != nil {
		return fmt.Errorf("save credential: %w", err)
	}
	return nil
}

// dropCredential removes a revoked credential.
func dropCredential(dataDir string) error {
	err := os.Remove(filepath.Join(dataDir, credentialFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove revoked credential: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to path with mode 0600 through a temporary file
// and a rename, so a crash never leaves a half-written file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

package tools

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// maxSocketPath is the room for a unix socket's path (sun_path).
const maxSocketPath = 104

// sshAgent is an in-process SSH agent holding one key, served on a unix
// socket in the workspace (<workspace>/.kk/ssh-<step>-<random>/agent.sock),
// so commands in containers reach it too (the workspace is shared). The key
// stays in the agent's memory; it never touches disk.
type sshAgent struct {
	dir  string
	sock string
	ln   net.Listener
	wg   sync.WaitGroup
	once sync.Once
}

// startSSHAgent serves key. shared makes the socket usable by another user
// (a step with `user`): the directory is then traversable but not listable,
// and its name is random.
func startSSHAgent(ws Workspace, step int, key string, shared bool) (*sshAgent, error) {
	pk, err := ssh.ParseRawPrivateKey([]byte(key))
	if err != nil {
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, errors.New("the key is protected by a passphrase: store it without one")
		}
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: pk, Comment: "kk step key"}); err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	kk, err := ws.kkDir()
	if err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	dir := filepath.Join(kk, fmt.Sprintf("ssh-%d-%s", step, hex.EncodeToString(b[:])))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ssh-agent directory: %w", err)
	}
	a := &sshAgent{dir: dir, sock: filepath.Join(dir, "agent.sock")}
	if len(a.sock) >= maxSocketPath {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("ssh-agent socket path %s is too long for a unix socket: use a shorter agent data dir", a.sock)
	}
	ln, err := net.Listen("unix", a.sock)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("ssh-agent: %w", err)
	}
	a.ln = ln
	mode := os.FileMode(0o600)
	if shared {
		mode = 0o666
		err = os.Chmod(dir, 0o711)
	}
	if err == nil {
		err = os.Chmod(a.sock, mode)
	}
	if err != nil {
		a.stop()
		return nil, fmt.Errorf("ssh-agent: %w", err)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed by stop
			}
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				defer conn.Close()
				_ = agent.ServeAgent(keyring, conn) // ends when the client hangs up
			}()
		}
	}()
	return a, nil
}

// stop closes the socket and removes it. Connections still open end when
// their client closes them.
func (a *sshAgent) stop() {
	a.once.Do(func() {
		_ = a.ln.Close()
		_ = os.RemoveAll(a.dir)
	})
}

// Package secrets encrypts the values of project secrets at rest.
//
// Values are sealed with AES-256-GCM under kkd's secret key. A sealed value is
//
//	[key id: 1 byte][nonce: 12 random bytes][ciphertext + 16-byte tag]
//
// The key id names the key that sealed the value, so keys can be rotated
// later (a Cipher that knows the old and the new key opens both; values are
// re-sealed under the new one). This version knows one key, id 1.
//
// The additional authenticated data binds a sealed value to its project id
// and secret name: a row copied onto another secret (or another project)
// fails to open instead of handing out the wrong value.
//
// The key comes from the environment (KKD_SECRET_KEY, base64 of 32 bytes) or
// else from the file secret.key in kkd's data dir, created with 32 random
// bytes and mode 0600 on first start. A key file of another size or one that
// group or others can read is refused.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	// KeyEnv is the environment variable that holds the key, base64-encoded.
	KeyEnv = "KKD_SECRET_KEY"
	// KeyFile is the key file's name in the data dir.
	KeyFile = "secret.key"
	// KeySize is the size of a key: AES-256.
	KeySize = 32
	// NonceSize is the size of a GCM nonce.
	NonceSize = 12

	// currentKeyID is the id of the key this version seals with.
	currentKeyID byte = 1
	overhead          = 1 + NonceSize + 16
)

// ErrDecrypt is returned when a sealed value cannot be opened: it was sealed
// under another key, for another secret, or was changed.
var ErrDecrypt = errors.New("secret value cannot be decrypted")

// Cipher seals and opens secret values. It is safe for concurrent use.
type Cipher struct {
	keys map[byte]cipher.AEAD
	cur  byte
}

// New returns a Cipher that seals with key (32 bytes) under key id 1.
func New(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key is %d bytes: want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &Cipher{keys: map[byte]cipher.AEAD{currentKeyID: aead}, cur: currentKeyID}, nil
}

// aad binds a value to its project and name.
func aad(projectID int64, name string) []byte {
	b := make([]byte, 0, 16+len(name))
	b = append(b, "kk-secret\x00"...)
	b = binary.BigEndian.AppendUint64(b, uint64(projectID))
	return append(b, name...)
}

// Seal encrypts plaintext for the secret name of project projectID.
func (c *Cipher) Seal(projectID int64, name string, plaintext []byte) ([]byte, error) {
	aead := c.keys[c.cur]
	out := make([]byte, 1+NonceSize, overhead+len(plaintext))
	out[0] = c.cur
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, fmt.Errorf("seal secret %q: read random nonce: %w", name, err)
	}
	return aead.Seal(out, out[1:1+NonceSize], plaintext, aad(projectID, name)), nil
}

// Open decrypts a value sealed for the secret name of project projectID. It
// returns an error wrapping ErrDecrypt when the value was sealed under an
// unknown key, for another secret, or was tampered with.
func (c *Cipher) Open(projectID int64, name string, sealed []byte) ([]byte, error) {
	if len(sealed) < overhead {
		return nil, fmt.Errorf("open secret %q: sealed value is %d bytes, too short: %w", name, len(sealed), ErrDecrypt)
	}
	aead, ok := c.keys[sealed[0]]
	if !ok {
		return nil, fmt.Errorf("open secret %q: sealed under key id %d, which this kkd does not have (was %s changed?): %w",
			name, sealed[0], KeyEnv, ErrDecrypt)
	}
	pt, err := aead.Open(nil, sealed[1:1+NonceSize], sealed[1+NonceSize:], aad(projectID, name))
	if err != nil {
		return nil, fmt.Errorf("open secret %q: the value does not belong to this secret or kkd's secret key changed: %w", name, ErrDecrypt)
	}
	return pt, nil
}

// Load returns the Cipher of kkd: the key is envKey (the value of
// KKD_SECRET_KEY) when it is not empty, else the key file in dataDir, which
// is created when it does not exist. created tells whether a new key file was
// written (the caller should say it must be backed up with the database).
func Load(dataDir, envKey string) (c *Cipher, created bool, err error) {
	key, created, err := loadKey(dataDir, envKey)
	if err != nil {
		return nil, false, err
	}
	c, err = New(key)
	return c, created, err
}

func loadKey(dataDir, envKey string) ([]byte, bool, error) {
	if envKey = strings.TrimSpace(envKey); envKey != "" {
		key, err := base64.StdEncoding.DecodeString(envKey)
		if err != nil {
			key, err = base64.RawStdEncoding.DecodeString(envKey)
		}
		if err != nil || len(key) != KeySize {
			return nil, false, fmt.Errorf("%s is not the base64 encoding of %d bytes: generate a key with `head -c %d /dev/urandom | base64`",
				KeyEnv, KeySize, KeySize)
		}
		return key, false, nil
	}
	if dataDir == "" {
		return nil, false, fmt.Errorf("no secret key: set %s or give a data dir for %s", KeyEnv, KeyFile)
	}
	path := filepath.Join(dataDir, KeyFile)
	key, err := readKeyFile(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	created, err := createKeyFile(path)
	if err != nil {
		return nil, false, err
	}
	if !created { // another kkd created it first
		key, err = readKeyFile(path)
		return key, false, err
	}
	key, err = readKeyFile(path)
	return key, true, err
}

// readKeyFile reads a key file, refusing one that is not private or not of
// the right size.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("open secret key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secret key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secret key file %s has mode %04o, readable by group or others: run `chmod 600 %s` (and consider the key leaked if others could read it)",
			path, perm, path)
	}
	if fi.Size() != KeySize {
		return nil, fmt.Errorf("secret key file %s is %d bytes, want %d: restore the right key file from your backup (without it the stored secrets cannot be decrypted), or move it away to start with a new key and re-create the secrets",
			path, fi.Size(), KeySize)
	}
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("read secret key file %s: %w", path, err)
	}
	return key, nil
}

// createKeyFile writes a new random key to path, atomically: the key is
// written and synced to a temporary file that is then linked to path, so
// no one ever reads a partial key. It returns false when path appeared
// meanwhile (another kkd won the race).
func createKeyFile(path string) (bool, error) {
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return false, fmt.Errorf("generate secret key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), KeyFile+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("create secret key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, fmt.Errorf("create secret key file: %w", err)
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return false, fmt.Errorf("write secret key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("sync secret key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("write secret key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("create secret key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return true, nil
}

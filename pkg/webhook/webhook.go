// Package webhook verifies and parses the webhook deliveries of GitHub,
// GitLab and Gitea (also Forgejo, which sends Gitea's headers).
//
// It is pure: it reads headers and the raw body and says whether the
// delivery is authentic (Verify), what identifies it (DeliveryID) and what
// it asks for (Parse): a CI flow for a push to a branch, a DEV flow for a
// pull or merge request opened, reopened or given new commits, or nothing.
// kkd's HTTP handler (pkg/server) acts on the result.
//
// Signatures: GitHub sends X-Hub-Signature-256: sha256=HEX and Gitea
// X-Gitea-Signature: HEX, both the HMAC-SHA256 of the raw body under the
// project's webhook secret; GitLab sends the secret itself in X-Gitlab-Token.
// GitHub's legacy X-Hub-Signature: sha1=HEX (HMAC-SHA1; older GitHub
// Enterprise servers send only it) is accepted when X-Hub-Signature-256 is
// absent. Forgejo's X-Forgejo-* and Gogs' X-Gogs-* headers stand in for
// Gitea's when those are absent. Every comparison takes constant time.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // GitHub's legacy X-Hub-Signature is HMAC-SHA1
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
)

// Forge is a source code host that sends webhooks.
type Forge string

// The forges kkd takes webhooks from.
const (
	GitHub Forge = "github"
	GitLab Forge = "gitlab"
	Gitea  Forge = "gitea"
)

// Forges returns every supported forge, in the order docs list them.
func Forges() []Forge { return []Forge{GitHub, GitLab, Gitea} }

// ParseForge checks a forge name from a URL.
func ParseForge(s string) (Forge, error) {
	for _, f := range Forges() {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown forge %q: use github, gitlab or gitea", s)
}

// ErrSignature is wrapped by Verify's errors: the delivery is not from
// someone who knows the secret.
var ErrSignature = errors.New("webhook signature invalid")

// SecretSize is the number of random bytes of a generated secret.
const SecretSize = 32

// NewSecret returns a new random webhook secret (hex, 64 characters, fits
// every forge's secret field).
func NewSecret() (string, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate webhook secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Sign returns the hex HMAC-SHA256 of body under secret (GitHub's value
// after "sha256=", Gitea's whole value).
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks that the delivery carries a valid signature (or token)
// under secret. Its errors wrap ErrSignature and say which header is
// missing or wrong; they never include the secret or the expected value.
func Verify(f Forge, h http.Header, body, secret []byte) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: the project has no webhook secret", ErrSignature)
	}
	switch f {
	case GitHub:
		const hdr, legacy = "X-Hub-Signature-256", "X-Hub-Signature"
		if v := h.Get(hdr); v != "" {
			sig, ok := strings.CutPrefix(v, "sha256=")
			if !ok {
				return fmt.Errorf("%w: header %s is not sha256=HEX", ErrSignature, hdr)
			}
			return checkHMAC(hdr, sig, body, secret)
		}
		if v := h.Get(legacy); v != "" {
			sig, ok := strings.CutPrefix(v, "sha1=")
			if !ok {
				return fmt.Errorf("%w: header %s is not sha1=HEX", ErrSignature, legacy)
			}
			return checkHMACWith(sha1.New, legacy, sig, body, secret)
		}
		return fmt.Errorf("%w: header %s is missing: set the webhook's secret in GitHub (content type application/json)", ErrSignature, hdr)
	case Gitea:
		hdr, v := giteaHeader(h, "Signature")
		if v == "" {
			return fmt.Errorf("%w: header %s is missing: set the webhook's secret in Gitea", ErrSignature, hdr)
		}
		return checkHMAC(hdr, v, body, secret)
	case GitLab:
		const hdr = "X-Gitlab-Token"
		v := h.Get(hdr)
		if v == "" {
			return fmt.Errorf("%w: header %s is missing: set the webhook's secret token in GitLab", ErrSignature, hdr)
		}
		if subtle.ConstantTimeCompare([]byte(v), secret) != 1 {
			return fmt.Errorf("%w: header %s does not match the project's webhook secret", ErrSignature, hdr)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown forge %q", ErrSignature, f)
}

// giteaHeader returns the first of X-Gitea-NAME, X-Forgejo-NAME and
// X-Gogs-NAME that is set (Forgejo and older Gitea releases also send the
// others), with its name; the Gitea name and "" when none is.
func giteaHeader(h http.Header, name string) (string, string) {
	for _, p := range []string{"X-Gitea-", "X-Forgejo-", "X-Gogs-"} {
		if v := h.Get(p + name); v != "" {
			return p + name, v
		}
	}
	return "X-Gitea-" + name, ""
}

func checkHMAC(hdr, sig string, body, secret []byte) error {
	return checkHMACWith(sha256.New, hdr, sig, body, secret)
}

// checkHMACWith checks sig, the hex HMAC of body under secret with hash
// newHash, in constant time.
func checkHMACWith(newHash func() hash.Hash, hdr, sig string, body, secret []byte) error {
	m := hmac.New(newHash, secret)
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil || len(got) != m.Size() {
		return fmt.Errorf("%w: header %s is not a hex HMAC of %d bytes", ErrSignature, hdr, m.Size())
	}
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return fmt.Errorf("%w: header %s does not match the body under the project's webhook secret", ErrSignature, hdr)
	}
	return nil
}

// maxDeliveryID bounds a delivery id taken from a header.
const maxDeliveryID = 200

// DeliveryID returns the forge's id of the delivery (X-GitHub-Delivery,
// X-Gitea-Delivery, X-Gitlab-Event-UUID), or "sha256:" and the hex SHA-256
// of the body when the header is absent (a redelivery of the same body is
// then the same delivery). A forge redelivers with the same id.
func DeliveryID(f Forge, h http.Header, body []byte) string {
	var v string
	switch f {
	case GitHub:
		v = h.Get("X-GitHub-Delivery")
	case Gitea:
		_, v = giteaHeader(h, "Delivery")
	case GitLab:
		v = h.Get("X-Gitlab-Event-UUID")
	}
	v = strings.TrimSpace(v)
	if v == "" || len(v) > maxDeliveryID {
		sum := sha256.Sum256(body)
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return v
}

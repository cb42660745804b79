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
// Every comparison takes constant time.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
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
		const hdr = "X-Hub-Signature-256"
		v := h.Get(hdr)
		if v == "" {
			return fmt.Errorf("%w: header %s is missing: set the webhook's secret in GitHub (content type application/json)", ErrSignature, hdr)
		}
		sig, ok := strings.CutPrefix(v, "sha256=")
		if !ok {
			return fmt.Errorf("%w: header %s is not sha256=HEX", ErrSignature, hdr)
		}
		return checkHMAC(hdr, sig, body, secret)
	case Gitea:
		const hdr = "X-Gitea-Signature"
		v := h.Get(hdr)
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

func checkHMAC(hdr, sig string, body, secret []byte) error {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: header %s is not a hex SHA-256 HMAC", ErrSignature, hdr)
	}
	m := hmac.New(sha256.New, secret)
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
		v = h.Get("X-Gitea-Delivery")
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

package api

import (
	"net/url"
	"time"

	"github.com/kraken-go/kk/pkg/ci"
)

// Webhook routes:
//
//	POST /api/v1/projects/{p}/webhook    WebhookRequest → WebhookSetup (user; creates
//	                                     the secret on first use, rotate replaces it)
//	GET  /api/v1/projects/{p}/deliveries?limit=N  → []WebhookDelivery, newest first (user)
//	POST /webhooks/{p}/{forge}           a forge's delivery (public; signed with the
//	                                     project's webhook secret) → WebhookResult
//
// {forge} is github, gitlab or gitea. A delivery answers 201 when it started
// flows, 202 when it started none (ignored event, no branch tracks the ref),
// 200 for a delivery id received before, 401 for a missing or invalid
// signature (nothing changes).

// WebhookPath is the path of a project's webhook for forge.
func WebhookPath(project, forge string) string {
	return "/webhooks/" + url.PathEscape(project) + "/" + url.PathEscape(forge)
}

// WebhookRequest asks for a project's webhook setup.
type WebhookRequest struct {
	// Rotate replaces the secret with a new one (the forges must be given it).
	Rotate bool `json:"rotate,omitempty"`
}

// WebhookSetup is what a forge needs to send a project's webhooks.
type WebhookSetup struct {
	Project string `json:"project"`
	// Secret is the project's webhook secret: the HMAC key of GitHub's and
	// Gitea's signatures and GitLab's secret token.
	Secret string `json:"secret"`
	// Paths are the webhook paths by forge (github, gitlab, gitea), to
	// append to kkd's public URL.
	Paths map[string]string `json:"paths"`
	// Created tells that this call created (or rotated) the secret.
	Created bool `json:"created"`
	// PublicURL is kkd's public URL (kkd --public-url), "" when not set.
	PublicURL string `json:"public_url,omitempty"`
}

// WebhookResult is kkd's answer to a delivery.
type WebhookResult struct {
	// Status: started, ignored, no_branch or duplicate.
	Status   string        `json:"status"`
	Message  string        `json:"message"`
	Forge    string        `json:"forge"`
	Event    string        `json:"event,omitempty"`
	Delivery string        `json:"delivery,omitempty"`
	Flows    []WebhookFlow `json:"flows,omitempty"`
}

// WebhookFlow is a flow a delivery started.
type WebhookFlow struct {
	ID     int64       `json:"id"`
	Branch string      `json:"branch"`
	Kind   ci.FlowKind `json:"kind"`
}

// Statuses of WebhookResult.
const (
	WebhookStarted   = "started"
	WebhookIgnored   = "ignored"
	WebhookNoBranch  = "no_branch"
	WebhookDuplicate = "duplicate"
)

// WebhookDelivery is a delivery kkd recorded (GET
// /api/v1/projects/{p}/deliveries). Refused deliveries (bad signature) are
// not recorded: kkd's log has them.
type WebhookDelivery struct {
	Forge    string    `json:"forge"`
	Event    string    `json:"event"`
	Delivery string    `json:"delivery"`
	Received time.Time `json:"received"`
	// Outcome: started, no_branch, ignored; "" for deliveries recorded
	// before kkd recorded outcomes.
	Outcome string  `json:"outcome"`
	Flows   []int64 `json:"flows,omitempty"`
	// Duplicates counts the later deliveries with the same id; they
	// started nothing.
	Duplicates int    `json:"duplicates"`
	Note       string `json:"note,omitempty"`
}

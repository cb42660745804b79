package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/kraken-go/kk/pkg/api"
	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/engine"
	"github.com/kraken-go/kk/pkg/store"
	"github.com/kraken-go/kk/pkg/webhook"
)

// maxWebhookBody bounds a webhook delivery (GitHub caps payloads at 25 MB,
// but a push with thousands of commits is not what we start flows from).
const maxWebhookBody = 5 << 20

// webhookSecretName binds the sealed webhook secret to its purpose (project
// secret names cannot contain ':', so it never opens as one of them).
const webhookSecretName = "webhook:secret"

func (s *Server) webhookRoutes(user func(string, handlerFunc), pub func(string, handlerFunc)) {
	user("POST "+api.Prefix+"/projects/{p}/webhook", s.webhookSetup)
	user("GET "+api.Prefix+"/projects/{p}/deliveries", s.listDeliveries)
	pub("POST /webhooks/{p}/{forge}", s.webhookDelivery)
}

// webhookSetup returns the project's webhook secret and paths, creating the
// secret on first use (or anew with rotate).
func (s *Server) webhookSetup(w http.ResponseWriter, r *http.Request) error {
	p, err := s.project(r)
	if err != nil {
		return err
	}
	var req api.WebhookRequest
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	if err := s.requireCipher(); err != nil {
		return err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return err
	}
	sealed, err := s.cfg.Secrets.Seal(p.ID, webhookSecretName, []byte(secret))
	if err != nil {
		return fmt.Errorf("seal webhook secret: %w", err)
	}
	stored, err := s.cfg.Store.PutWebhookSecret(r.Context(), p.ID, sealed, req.Rotate)
	if err != nil {
		return err
	}
	plain, err := s.cfg.Secrets.Open(p.ID, webhookSecretName, stored)
	if err != nil {
		return fmt.Errorf("the webhook secret of project %s cannot be decrypted (kkd's secret key changed): make a new one with `kk project webhook %s --rotate`: %w",
			p.Name, p.Name, err)
	}
	created := string(plain) == secret
	if created {
		s.cfg.Logger.Info("webhook secret created", "project", p.Name, "rotate", req.Rotate, "user", userFrom(r).Name)
	}
	paths := map[string]string{}
	for _, f := range webhook.Forges() {
		paths[string(f)] = api.WebhookPath(p.Name, string(f))
	}
	return writeJSON(w, http.StatusOK, api.WebhookSetup{Project: p.Name, Secret: string(plain), Paths: paths, Created: created, PublicURL: s.cfg.PublicURL})
}

func unauthorizedf(format string, args ...any) error {
	return api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, format, args...)
}

// webhookDelivery takes a forge's delivery: it checks the signature before
// anything else, then starts a CI flow for a push to a branch, or a DEV
// flow for a pull request, on every branch of the project whose repository
// branch is the pushed one (or the pull request's base). A delivery id is
// recorded before the flows start, so a repeated delivery starts nothing,
// also when two replicas of kkd receive it at once.
func (s *Server) webhookDelivery(w http.ResponseWriter, r *http.Request) error {
	forge, err := webhook.ParseForge(r.PathValue("forge"))
	if err != nil {
		return notFoundf("%v: the webhook URLs are /webhooks/PROJECT/{github,gitlab,gitea} (see `kk project webhook PROJECT`)", err)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return badRequest("webhook body is larger than %d bytes: kkd takes deliveries up to 5 MiB", maxWebhookBody)
		}
		return fmt.Errorf("read webhook body: %w", err)
	}
	// An unknown project, or one without a usable webhook secret, is
	// checked against a random secret and refused like a wrong signature,
	// so that the public URL does not tell which projects exist.
	p, secret, why, err := s.webhookTarget(r)
	if err != nil {
		return err
	}
	if err := webhook.Verify(forge, r.Header, body, secret); err != nil || why != "" {
		if why == "" {
			why = err.Error()
		}
		s.cfg.Logger.Warn("webhook delivery refused", "project", r.PathValue("p"), "forge", forge, "remote", remoteIP(r), "reason", why)
		if err == nil {
			// A random secret was guessed: refuse all the same.
			err = fmt.Errorf("%w: the signature does not match", webhook.ErrSignature)
		}
		return unauthorizedf("%v (check the project in the webhook URL and the secret from `kk project webhook PROJECT`)", err)
	}
	ev, err := webhook.Parse(forge, r.Header, body)
	if err != nil {
		return badRequest("%s webhook: %v", forge, err)
	}
	res := api.WebhookResult{Forge: string(forge), Event: ev.Name, Delivery: webhook.DeliveryID(forge, r.Header, body)}
	log := s.cfg.Logger.With("project", p.Name, "forge", forge, "event", ev.Name, "delivery_id", res.Delivery)
	if ev.Kind == webhook.KindIgnore {
		res.Status, res.Message = api.WebhookIgnored, "ignored: "+ev.Reason
		log.Info("webhook delivery ignored", "reason", ev.Reason)
		// Recorded for `kk project deliveries`; a repeat is counted and
		// answered the same (it starts nothing either way).
		d := store.Delivery{ProjectID: p.ID, Forge: string(forge), DeliveryID: res.Delivery, Event: ev.Name, Outcome: api.WebhookIgnored, Note: ev.Reason}
		if err := s.cfg.Store.RecordDelivery(r.Context(), &d); errors.Is(err, ci.ErrConflict) {
			s.countDuplicate(r, p, res)
		} else if err != nil {
			return err
		}
		return writeJSON(w, http.StatusAccepted, res)
	}

	branches, err := s.cfg.Store.ListBranches(r.Context(), p.ID)
	if err != nil {
		return err
	}
	var targets []ci.Branch
	for _, b := range branches {
		if b.RepoBranch == ev.Branch {
			targets = append(targets, b)
		}
	}
	d := store.Delivery{ProjectID: p.ID, Forge: string(forge), DeliveryID: res.Delivery, Event: ev.Name}
	if len(targets) == 0 {
		d.Outcome = api.WebhookNoBranch
		d.Note = fmt.Sprintf("no branch of project %s tracks repository branch %q", p.Name, ev.Branch)
	}
	if err := s.cfg.Store.RecordDelivery(r.Context(), &d); err != nil {
		if errors.Is(err, ci.ErrConflict) {
			return s.duplicateDelivery(w, r, p, res)
		}
		return err
	}
	if ev.Kind == webhook.KindPush && ev.Trigger != nil {
		// Stages read from the pushed branch get its code before its flow starts.
		urls := []string{ev.Trigger.Repo}
		if rp := ev.Trigger.Repository; rp != nil {
			urls = append(urls, rp.CloneURL, rp.HTMLURL, rp.SSHURL)
		}
		s.refreshPushed(r, p, urls, ev.Branch)
	}
	if len(targets) == 0 {
		res.Status = api.WebhookNoBranch
		res.Message = d.Note + fmt.Sprintf(": nothing started (create one with `kk branch create %s NAME --repo-branch %s`)", p.Name, ev.Branch)
		log.Info("webhook delivery matches no branch", "repo_branch", ev.Branch)
		return writeJSON(w, http.StatusAccepted, res)
	}

	kind := ci.FlowCI
	if ev.Kind == webhook.KindPullRequest {
		kind = ci.FlowDEV
	}
	ev.Trigger.Delivery = res.Delivery
	trigger, err := json.Marshal(ev.Trigger)
	if err != nil {
		return fmt.Errorf("encode trigger data: %w", err)
	}
	var failures []string
	var firstErr error
	for _, b := range targets {
		f, err := s.cfg.Engine.CreateFlowWith(r.Context(), b, kind, engine.FlowOptions{TriggerData: trigger})
		if err != nil {
			log.Warn("webhook flow not started", "branch", b.Name, "err", err)
			failures = append(failures, fmt.Sprintf("branch %s: %v", b.Name, err))
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		log.Info("flow started by webhook", "flow_id", f.ID, "branch", b.Name, "kind", kind)
		res.Flows = append(res.Flows, api.WebhookFlow{ID: f.ID, Branch: b.Name, Kind: kind})
	}
	if len(res.Flows) == 0 {
		// Nothing started: forget the delivery, so that the forge's
		// redelivery (after the stages are fixed) can start it.
		if err := s.cfg.Store.DeleteDelivery(r.Context(), d.ID); err != nil {
			log.Error("forget failed delivery", "err", err)
		}
		return fmt.Errorf("%s delivery %s started no flow: %s: %w", forge, res.Delivery, strings.Join(failures, "; "), firstErr)
	}
	note := strings.Join(failures, "; ")
	ids := make([]int64, len(res.Flows))
	for i, f := range res.Flows {
		ids[i] = f.ID
	}
	if err := s.cfg.Store.SetDeliveryResult(r.Context(), d.ID, ids, note); err != nil {
		return err
	}
	res.Status = api.WebhookStarted
	res.Message = fmt.Sprintf("started %d %s flow(s) for repository branch %s", len(res.Flows), kind, ev.Branch)
	if note != "" {
		res.Message += "; not started on " + note
	}
	return writeJSON(w, http.StatusCreated, res)
}

// duplicateDelivery answers a delivery id received before: nothing starts.
func (s *Server) duplicateDelivery(w http.ResponseWriter, r *http.Request, p ci.Project, res api.WebhookResult) error {
	res.Status = api.WebhookDuplicate
	res.Message = fmt.Sprintf("delivery %s was received before: nothing started", res.Delivery)
	if d, err := s.cfg.Store.GetDelivery(r.Context(), p.ID, res.Forge, res.Delivery); err == nil && d.FlowID != 0 {
		res.Message = fmt.Sprintf("delivery %s was received before and started flow %d: nothing started", res.Delivery, d.FlowID)
	}
	s.countDuplicate(r, p, res)
	return writeJSON(w, http.StatusOK, res)
}

// countDuplicate logs a repeated delivery and counts it on its record.
func (s *Server) countDuplicate(r *http.Request, p ci.Project, res api.WebhookResult) {
	log := s.cfg.Logger.With("project", p.Name, "forge", res.Forge, "delivery_id", res.Delivery)
	log.Info("webhook delivery repeated")
	if err := s.cfg.Store.AddDeliveryDuplicate(r.Context(), p.ID, res.Forge, res.Delivery); err != nil {
		// Deleted in between (retention): the answer stays right.
		log.Warn("count repeated delivery", "err", err)
	}
}

// defaultDeliveries is how many deliveries a listing returns without limit.
const defaultDeliveries = 50

// listDeliveries lists the project's recorded deliveries, newest first.
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	p, err := s.project(r)
	if err != nil {
		return err
	}
	limit := int64(defaultDeliveries)
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit=%q: give a whole number from 1 to 1000", v)
		}
		limit = n
	}
	ds, err := s.cfg.Store.ListDeliveries(r.Context(), p.ID, int(limit))
	if err != nil {
		return err
	}
	out := make([]api.WebhookDelivery, len(ds))
	for i, d := range ds {
		out[i] = api.WebhookDelivery{Forge: d.Forge, Event: d.Event, Delivery: d.DeliveryID, Received: d.Received,
			Outcome: d.Outcome, Flows: d.FlowIDs, Duplicates: d.Duplicates, Note: d.Note}
	}
	return writeJSON(w, http.StatusOK, out)
}

// webhookTarget resolves the delivery's project and opens its webhook
// secret. When the project does not exist, has no webhook secret, or its
// secret cannot be opened, it returns a fresh random secret (so the
// signature is still computed and refused) and why, for the log only.
func (s *Server) webhookTarget(r *http.Request) (ci.Project, []byte, string, error) {
	dummy := func(p ci.Project, why string) (ci.Project, []byte, string, error) {
		secret, err := webhook.NewSecret()
		if err != nil {
			return p, nil, "", err
		}
		return p, []byte(secret), why, nil
	}
	// Without a cipher no project takes webhooks: saying so tells nothing.
	if err := s.requireCipher(); err != nil {
		return ci.Project{}, nil, "", err
	}
	p, err := s.project(r)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return dummy(p, "no such project")
	}
	if err != nil {
		return p, nil, "", err
	}
	sealed, err := s.cfg.Store.GetWebhookSecret(r.Context(), p.ID)
	if errors.Is(err, ci.ErrNotFound) {
		return dummy(p, fmt.Sprintf("project %s has no webhook secret: create one with `kk project webhook %s`", p.Name, p.Name))
	}
	if err != nil {
		return p, nil, "", err
	}
	plain, err := s.cfg.Secrets.Open(p.ID, webhookSecretName, sealed)
	if err != nil {
		s.cfg.Logger.Error("cannot decrypt a webhook secret", "project", p.Name, "err", err)
		return dummy(p, fmt.Sprintf("the webhook secret of project %s cannot be decrypted (kkd's secret key changed): make a new one with `kk project webhook %s --rotate` and give it to the forge", p.Name, p.Name))
	}
	return p, plain, "", nil
}

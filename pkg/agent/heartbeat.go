package agent

import (
	"context"
	"time"
)

// minHeartbeatInterval spaces heartbeats the server answers at once (after a
// cancel, or a server that does not hold the request).
const minHeartbeatInterval = time.Second

// heartbeat holds the job's heartbeat request until ctx ends (when the job's
// end has been reported). Each call renews the lease; the server holds it up
// to the wait and answers early with cancel:true when the job is cancelled,
// so a cancel reaches the job at once. Stale-attempt and other fatal answers
// abandon the job; network errors and 5xx are retried with backoff and
// jitter, capped at jobWriteMaxBackoff, for as long as the job runs.
func (r *jobRunner) heartbeat(ctx context.Context) {
	bo := r.backoff()
	lease := time.Duration(r.asg.LeaseSeconds) * time.Second
	cancelled := false
	var failingSince time.Time
	for ctx.Err() == nil {
		wait := r.cfg.HeartbeatWait
		if lease > 0 && wait > lease/3 {
			wait = lease / 3
		}
		wait = max(wait, time.Second)
		start := time.Now()
		resp, err := r.client.heartbeat(ctx, r.asg.JobID, r.asg.Attempt, wait)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			bo.reset()
			if !failingSince.IsZero() {
				r.log.Info("heartbeat delivered again", "failed_for", time.Since(failingSince).Round(time.Millisecond))
				failingSince = time.Time{}
			}
			if resp.LeaseSeconds > 0 {
				lease = time.Duration(resp.LeaseSeconds) * time.Second
			}
			if resp.Cancel && !cancelled {
				cancelled = true
				r.log.Info("job cancelled by the server")
				r.cancelJob(errCancelRequested)
			}
		case jobFatal(err):
			r.abandon(err)
			return
		default:
			d := bo.next()
			if failingSince.IsZero() {
				failingSince = time.Now()
				r.log.Warn("heartbeat failed; retrying with backoff while the job goes on", "err", err, "retry_in", d.Round(time.Millisecond))
			} else {
				r.log.Debug("heartbeat failed; retrying", "err", err, "retry_in", d.Round(time.Millisecond))
			}
			if !sleepCtx(ctx, d) {
				return
			}
			continue
		}
		if d := minHeartbeatInterval - time.Since(start); d > 0 && !sleepCtx(ctx, d) {
			return
		}
	}
}

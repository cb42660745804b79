package logs

import "github.com/kraken-go/kk/pkg/dbhealth"

// Resweep runs Sweep again in the background, until Start's ctx is done or
// Stop: after a database outage, it archives the jobs whose archive failed
// during it. It does nothing before Start or after Stop.
func (a *Archiver) Resweep() {
	a.mu.Lock()
	ctx := a.ctx
	if ctx == nil {
		a.mu.Unlock()
		return
	}
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		n, err := a.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			a.cfg.Logger.Log(ctx, dbhealth.Level(err), "log archive sweep failed", "err", err, "archived", n)
		case n > 0:
			a.cfg.Logger.Info("log archive sweep done", "archived", n)
		}
	}()
}
